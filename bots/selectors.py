"""Reads of the bots app."""

from django.db.models import QuerySet

from bots.models import Channel, Conversation, Customer, Message


def web_channel_default() -> Channel | None:
    return Channel.objects.filter(kind=Channel.Kind.WEB, enabled=True).order_by("id").first()


def web_customer_get(*, customer_id: int) -> Customer | None:
    return Customer.objects.filter(pk=customer_id, channel__kind=Channel.Kind.WEB).select_related("channel").first()


def web_customers_list(*, limit: int = 50) -> list[Customer]:
    return list(Customer.objects.filter(channel__kind=Channel.Kind.WEB).order_by("-id")[:limit])


def customer_messages(*, customer: Customer, limit: int = 200) -> list[Message]:
    rows = Message.objects.filter(conversation__customer=customer).order_by("-created_at", "-id")[:limit]
    return list(reversed(rows))


def conversations_list() -> QuerySet[Conversation]:
    return Conversation.objects.select_related("customer", "channel").order_by("-last_message_at", "-id")


def messages_list() -> QuerySet[Message]:
    return Message.objects.select_related("channel").order_by("created_at", "id")
