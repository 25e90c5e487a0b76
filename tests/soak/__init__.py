"""Chaos soak: many jobs through real workers while a worker is SIGKILLed and Redis restarts.

Run the long variant with ``make soak`` (``python -m tests.soak --jobs 10000``); a short variant
runs in the normal suite (``tests/soak/test_soak.py``). See ``tests/soak/chaos.py`` (the run loop) and
the modules it names.
"""
