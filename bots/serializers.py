from rest_framework import serializers

from bots.models import Conversation, Message


class ConversationSerializer(serializers.ModelSerializer):
    customer_nickname = serializers.CharField(source="customer.nickname", read_only=True)
    channel = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "customer",
            "customer_nickname",
            "channel",
            "status",
            "created_at",
            "last_message_at",
            "resolved_at",
        ]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "channel",
            "direction",
            "sender",
            "type",
            "content",
            "status",
            "external_id",
            "trace",
            "created_at",
            "processed_at",
        ]
        read_only_fields = fields
