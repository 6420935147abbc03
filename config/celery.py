"""The Celery application. Queues: inbound (decisions), outbound (sending), default, ml (slow work)."""

import logging
import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kefu")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("inbound"), Queue("outbound"), Queue("default"), Queue("ml")]
app.autodiscover_tasks()


@signals.task_prerun.connect
def _db_connections_check(**kwargs) -> None:
    """With CELERY_DB_REUSE_MAX the worker keeps its connections between tasks; drop one that broke or outlived
    CONN_MAX_AGE, as Django does at the start of each request."""
    from django.db import close_old_connections

    close_old_connections()


@signals.after_setup_logger.connect
def _quiet_per_task_lines(**kwargs) -> None:
    """No "Task … received" / "Task … succeeded" line per task at INFO: under load they were most of the log
    volume (and of honcho's CPU relaying it). The tasks' own log lines carry ``task_id``; failures still log."""
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)
