from rest_framework import serializers

from bots.models import Channel, Customer
from routing.models import Order


class OrderSerializer(serializers.ModelSerializer):
    """An order. Identify the customer by ``customer`` (Kefu id) or by ``channel`` (slug) + ``external_id``
    (the customer's id on that channel, e.g. an OpenID)."""

    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)
    channel = serializers.SlugRelatedField(
        slug_field="slug", queryset=Channel.objects.all(), required=False, write_only=True
    )
    external_id = serializers.CharField(required=False, write_only=True, max_length=128)
    items = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    number = serializers.CharField(max_length=64)  # no uniqueness check: a known number updates the order

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "customer",
            "channel",
            "external_id",
            "person",
            "amount",
            "paid_at",
            "items",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "person", "created_at", "updated_at"]

    def validate(self, attrs):
        customer = attrs.get("customer")
        channel, external_id = attrs.pop("channel", None), attrs.pop("external_id", None)
        if customer is None:
            if channel is None or not external_id:
                raise serializers.ValidationError({"customer": ["Give customer, or channel and external_id."]})
            customer = Customer.objects.filter(channel=channel, external_id=external_id).first()
            if customer is None:
                raise serializers.ValidationError({"external_id": ["No customer with this id on this channel."]})
            attrs["customer"] = customer
        return attrs
