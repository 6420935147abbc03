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


# inbound meta keys an adapter's send needs to reach the right account or room (see ``delivery_meta``)
DELIVERY_META_KEYS = ("open_kfid", "room_id", "account")


def delivery_meta(inbound: Message) -> dict:
    """The part of an inbound message's meta that a reply to it must carry: WeCom ``open_kfid``, bridge
    ``room_id``, OA ``account``. Stored on the reply (plain JSON), so nothing personal goes in here."""
    return {key: inbound.meta[key] for key in DELIVERY_META_KEYS if (inbound.meta or {}).get(key)}


def send_meta(message: Message) -> dict:
    """``OutgoingMessage.meta`` for an outgoing message: its stored meta plus, for a group reply, the customer's
    ``nickname`` to @-mention (read from the encrypted customer row at send time, never stored in meta)."""
    meta = dict(message.meta or {})
    if meta.get("room_id") and "nickname" not in meta:
        nickname = message.conversation.customer.nickname
        if nickname:
            meta["nickname"] = nickname
    return meta


def publish_message(message: Message, customer_id: int) -> None:
    payload = message_payload(message)
    groups = [realtime.customer_group(customer_id), realtime.conversation_group(message.conversation_id)]
    realtime.publish_many(groups, "message.created", payload)
