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


class ChannelLimitSerializer(serializers.Serializer):
    """One sending account's hourly limit (``bots.selectors.channel_limits_usage``); limit 0 = none."""

    channel = serializers.CharField(help_text="channel slug")
    name = serializers.CharField()
    kind = serializers.CharField()
    available = serializers.BooleanField(help_text="false when Redis did not answer (the numbers are null)")
    limit = serializers.IntegerField(allow_null=True, help_text="messages per hour; 0 = no hourly limit")
    used = serializers.IntegerField(allow_null=True, help_text="slots taken within the last hour")
    reserved = serializers.IntegerField(allow_null=True, help_text="held messages booked for later slots")
    remaining = serializers.IntegerField(allow_null=True, help_text="messages that may go now; null = no limit")
    percent = serializers.IntegerField(allow_null=True)
    resets_at = serializers.FloatField(allow_null=True, help_text="Unix time the oldest slot leaves the window")
    alert = serializers.BooleanField(help_text="80 % reached within the last hour")
