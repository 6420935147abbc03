"""Orders API: ``POST /api/v1/orders/`` creates (201) or updates by order number (200); ``GET`` lists and
reads them (filters: ``customer``, ``person``, ``number``). Token or session auth; Django model permissions
(``routing.add_order`` to post, plus ``routing.change_order`` to update a known number, ``routing.view_order``
to read)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import DjangoModelPermissions, IsAuthenticated
from rest_framework.response import Response

from core.errors import ApplicationError
from routing import services
from routing.models import Order
from routing.serializers import OrderSerializer


class OrderPermissions(DjangoModelPermissions):
    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("customer", int, description="customer id"),
            OpenApiParameter("person", int, description="customer profile id"),
            OpenApiParameter("number", str, description="order number"),
        ]
    )
)
class OrderViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OrderSerializer
    permission_classes = [IsAuthenticated, OrderPermissions]
    queryset = Order.objects.select_related("customer").order_by("-id")

    def get_queryset(self):
        qs = super().get_queryset()
        params = self.request.query_params
        for name in ("customer", "person"):
            value = params.get(name)
            if value is not None:
                qs = qs.filter(**{f"{name}_id": int(value)}) if value.isascii() and value.isdigit() else qs.none()
        if params.get("number"):
            qs = qs.filter(number=params["number"])
        return qs

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if Order.objects.filter(number=data["number"]).exists() and not request.user.has_perm("routing.change_order"):
            raise ApplicationError("you may not change existing orders", code="permission_denied", status=403)
        order, created = services.order_upsert(
            number=data["number"],
            customer_id=data["customer"].pk,
            amount=data["amount"],
            paid_at=data.get("paid_at"),
            items=data.get("items") or [],
            status=data.get("status", Order.Status.PAID),
        )
        return Response(
            self.get_serializer(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
