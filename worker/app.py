"""``celery_app``: ``celery -A worker.app worker|beat|flower``.

Importing this module builds the app object from settings; it connects to nothing and builds
no orchestrator (that happens per worker process, after fork: see ``worker.resources``).
"""

from __future__ import annotations

from celery import Celery

from worker import settings

celery_app = Celery("llm_orchestrator")
celery_app.conf.update(settings.celery_config())
celery_app.conf.include = ["tasks.llm", "tasks.costs", "tasks.jobs"]
app = celery_app  # `celery -A worker.app` finds either name
