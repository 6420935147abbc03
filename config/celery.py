"""The Celery application. Queues: inbound (decisions), outbound (sending), default, ml (slow work)."""

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
