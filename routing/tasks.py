"""Celery tasks of the routing app: take ids (or nothing), call one service, own their retries.

``rfm_recompute`` runs on the slow ``ml`` queue (nightly by beat, on demand after merges or when the Redis
sorted set was lost); the sweeps run on ``default`` every few seconds.
"""

import logging

from celery import shared_task

from core import logging as klog
from core import redis as kredis
from routing import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def rfm_recompute(self) -> int:
    with klog.bound(task_id=self.request.id):
        try:
            kredis.client().delete(services.rfm.REQUEST_KEY)  # requests from now on queue a fresh run
        except Exception:
            logger.warning("rfm: could not clear the request key")
        try:
            return services.rfm_recompute().people
        except Exception as exc:
            raise self.retry(exc=exc, countdown=60 * (self.request.retries + 1)) from exc


@shared_task
def presence_sweep() -> int:
    gone = services.presence_sweep()
    services.queues_dispatch_all()
    return len(gone)


@shared_task
def sla_sweep() -> int:
    flagged = services.sla_sweep()
    services.tickets_autoclose()
    return len(flagged)
