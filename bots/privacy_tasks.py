"""Celery tasks of the privacy features (loaded through ``CELERY_IMPORTS``; ``bots/tasks.py`` is the message
path's). Thin: call the service, log the result."""

from celery import shared_task

from bots.services import privacy


@shared_task(acks_late=True, reject_on_worker_lost=True)
def purge_expired() -> int:
    """Nightly (beat ``retention-purge-nightly``): replace the content of messages older than KEFU_RETENTION_DAYS."""
    return privacy.messages_purge_expired()["purged"]
