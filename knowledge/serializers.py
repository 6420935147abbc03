from rest_framework import serializers

from knowledge.models import KeywordRule


class KeywordRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = KeywordRule
        fields = [
            "id",
            "name",
            "keyword",
            "match_type",
            "reply",
            "priority",
            "enabled",
            "channels",
            "active_from",
            "active_until",
            "daily_start",
            "daily_end",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
