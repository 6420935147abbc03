"""Read API over conversations and messages, and the sending accounts' use of their hourly limits."""

import redis
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from bots import ratelimit, selectors
from bots.models import Channel
from bots.serializers import ChannelLimitSerializer, ConversationSerializer, MessageSerializer
from core.permissions import ModelPermissionsWithView


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("status", str, description="bot | queued | human | resolved")])
)
class ConversationViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ConversationSerializer
    permission_classes = [ModelPermissionsWithView]

    def get_queryset(self):
        qs = selectors.conversations_list()
        status = self.request.query_params.get("status")
        return qs.filter(status=status) if status else qs

    @extend_schema(responses=MessageSerializer(many=True))
    @action(detail=True)
    def messages(self, request, pk=None):
        conversation = self.get_object()
        page = self.paginate_queryset(selectors.messages_list().filter(conversation=conversation))
        return self.get_paginated_response(MessageSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("conversation", int, description="conversation id")])
)
class MessageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = MessageSerializer
    permission_classes = [ModelPermissionsWithView]

    def get_queryset(self):
        qs = selectors.messages_list()
        conversation = self.request.query_params.get("conversation")
        if conversation is not None:
            qs = qs.filter(conversation_id=int(conversation)) if _is_id(conversation) else qs.none()
        return qs


def _is_id(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses (a 500 before this guard)."""
    return value.isascii() and value.isdigit()


class ChannelLimitsView(APIView):
    """``GET /api/v1/channels/limits/``: each sending account's use of its hourly limit right now (the numbers of
    the Channel admin). Needs ``bots.view_channel``."""

    permission_classes = [ModelPermissionsWithView]
    queryset = Channel.objects.none()  # tells the model permissions which model

    @extend_schema(responses=ChannelLimitSerializer(many=True), summary="Sending limits per account")
    def get(self, request):
        channels = list(Channel.objects.order_by("id"))
        usage = selectors.channel_limits_usage(channels=channels)
        try:
            alerts = ratelimit.alerts_active([c.slug for c in channels])
        except redis.RedisError:  # Redis down: the usage says so (null), the alert flag is unknown
            alerts = {}
        rows = []
        for channel in channels:
            current = usage[channel.pk]
            rows.append(
                {
                    "channel": channel.slug,
                    "name": channel.name,
                    "kind": channel.kind,
                    "available": current is not None,
                    "limit": current.limit if current else None,
                    "used": current.used if current else None,
                    "reserved": current.reserved if current else None,
                    "remaining": current.remaining if current else None,
                    "percent": current.percent if current else None,
                    "resets_at": current.resets_at if current else None,
                    "alert": channel.slug in alerts or bool(current and current.alerting),
                }
            )
        return Response(ChannelLimitSerializer(rows, many=True).data)
