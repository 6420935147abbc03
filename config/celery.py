"""The Celery application. Queues: inbound (decisions), outbound (sending), default, ml (slow work)."""

import logging
import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from core import broker  # noqa: E402

broker.register()  # redis:// brokers through core.broker.Transport (one Redis client per channel)

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


@signals.worker_init.connect
def _warm_up_decisions(**kwargs) -> None:
    """With ``KEFU_WORKER_WARM_UP=1`` (the Procfile's reply worker) build the decision caches (rules, FAQ index,
    intent model, sentence embedder) once in the parent process, before the pool forks: every child starts warm and
    shares those pages copy-on-write, and ``gc.freeze`` keeps full collections from walking them mid-decision.
    The parent's database connections are closed afterwards so no child inherits one."""
    if os.environ.get("KEFU_WORKER_WARM_UP", "") not in {"1", "true", "yes"}:
        return
    from django.db import connections

    from knowledge.services.pipeline import decide_warm_up

    try:
        decide_warm_up(freeze_gc=True)
    except Exception:  # noqa: BLE001 - a cold start is slower, not broken
        logging.getLogger(__name__).exception("decision warm-up failed; workers start cold")
    finally:
        connections.close_all()
