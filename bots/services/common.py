"""Helpers shared by the inbound and outbound halves of the message path."""

from __future__ import annotations

from bots.models import Message
from core import realtime


def message_payload(message: Message) -> dict:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "sender": message.sender,
        "type": message.type,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
        "trace": message.trace,
    }


def publish_message(message: Message, customer_id: int) -> None:
    payload = message_payload(message)
    realtime.publish(realtime.customer_group(customer_id), "message.created", payload)
    realtime.publish(realtime.conversation_group(message.conversation_id), "message.created", payload)
