"""Read API over conversations and messages."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action

from bots import selectors
from bots.serializers import ConversationSerializer, MessageSerializer
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
