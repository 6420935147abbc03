"""Every write of the message path. Inbound (receive, handle) and outbound (reply, send) live apart so each
can grow without the other; import from here."""

from bots.services.common import message_payload
from bots.services.inbound import conversation_handle, message_receive, sweep_unprocessed, web_customer_create
from bots.services.outbound import MAX_SEND_ATTEMPTS, outbox_send, reply_queue, sweep_outbox

__all__ = [
    "MAX_SEND_ATTEMPTS",
    "conversation_handle",
    "message_payload",
    "message_receive",
    "outbox_send",
    "reply_queue",
    "sweep_outbox",
    "sweep_unprocessed",
    "web_customer_create",
]
