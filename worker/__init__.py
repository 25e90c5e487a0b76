"""The Celery side: app, settings, per-process resources and the producer API."""
