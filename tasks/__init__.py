"""Thin Celery tasks: validate the payload, call the library, store and return a result dict."""
