"""Keyword rules: CRUD for operators (Django model permissions decide who may change what)."""

from django.core.exceptions import ValidationError
from rest_framework import serializers, viewsets
from rest_framework.permissions import DjangoModelPermissions

from knowledge import services
from knowledge.models import KeywordRule
from knowledge.serializers import KeywordRuleSerializer


class ReadWriteModelPermissions(DjangoModelPermissions):
    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}


class KeywordRuleViewSet(viewsets.ModelViewSet):
    queryset = KeywordRule.objects.order_by("-priority", "id")
    serializer_class = KeywordRuleSerializer
    permission_classes = [ReadWriteModelPermissions]

    def _save(self, serializer):
        rule = serializer.instance or KeywordRule()
        for field, value in serializer.validated_data.items():
            setattr(rule, field, value)
        try:
            serializer.instance = services.keyword_rule_save(rule=rule)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    perform_create = _save
    perform_update = _save

    def perform_destroy(self, instance):
        services.keyword_rule_delete(rule=instance)
