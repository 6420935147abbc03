"""Celery tasks: take ids, call one service, own their retries."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from bots import services
from bots.services import outbound
from core import logging as klog

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=10)
def process_message(self, message_id: int) -> int | None:
    """Decide and reply; with ``KEFU_SEND_INLINE`` the reply is sent in this task (no ``send_outbox`` hop). A
    redelivery after a crash (the message is already processed) finishes a send the crash interrupted."""
    with klog.bound(message_id=message_id, task_id=self.request.id):
        try:
            reply = services.conversation_handle(message_id=message_id, send_inline=settings.KEFU_SEND_INLINE)
            if reply is None and settings.KEFU_SEND_INLINE:
                outbound.reply_resume(reply_to_id=message_id)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc
        return reply.id if reply else None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=10)
def send_outbox(self, outbox_id: int) -> str:
    with klog.bound(outbox_id=outbox_id, task_id=self.request.id):
        try:
            return services.outbox_send(outbox_id=outbox_id)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task
def sweep_unprocessed() -> int:
    return len(services.sweep_unprocessed())


@shared_task
def sweep_outbox() -> int:
    return len(services.sweep_outbox())


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def kf_sync(self, channel_id: int, token: str, open_kfid: str) -> int:
    """Pull a WeCom 微信客服 account after its callback (``bots.services.wecom.kf_sync``)."""
    from redis.exceptions import RedisError

    from bots.channels.base import ApiError
    from bots.services import wecom

    with klog.bound(task_id=self.request.id, channel_id=channel_id):
        try:
            return wecom.kf_sync(channel_id=channel_id, token=token, open_kfid=open_kfid).stored
        except (DatabaseError, RedisError) as exc:
            raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc
        except ApiError as exc:
            if not exc.retryable:
                logger.error("kf sync failed", extra={"code": exc.code, "error": exc.message})
                return 0
            raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 60)) from exc
