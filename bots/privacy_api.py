"""PIPL endpoints: ``GET /api/v1/customers/<id>/export/`` (a ZIP of JSON files) and
``POST /api/v1/customers/<id>/erase/`` (``{"reason": "..."}``). Thin: check the permission, call the service.

Permissions: ``bots.export_customer`` / ``bots.erase_customer`` (the supervisor group and superusers have them;
agents and operators do not: 403). An unknown id is 404."""

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from bots.services import privacy


class ZipRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: application/zip``; errors are still JSON bytes."""

    media_type = "application/zip"
    format = "zip"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return JSONRenderer().render(data)


def _perm(codename: str) -> type[BasePermission]:
    class HasPermission(BasePermission):
        message = _("You do not have permission to perform this action.")

        def has_permission(self, request, view):
            return bool(request.user and request.user.is_active and request.user.has_perm(codename))

    HasPermission.__name__ = f"Has_{codename.replace('.', '_')}"
    return HasPermission


class EraseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why the data is erased (kept in the audit log).")


ERASE_RESULT = inline_serializer(
    "CustomerErasure",
    {
        "customer_id": serializers.IntegerField(),
        "erased_at": serializers.DateTimeField(),
        "already_erased": serializers.BooleanField(),
        "before": serializers.DictField(child=serializers.IntegerField()),
        "after": serializers.DictField(child=serializers.IntegerField()),
        "changed": serializers.DictField(child=serializers.IntegerField()),
    },
)


class CustomerExportView(APIView):
    permission_classes = [IsAuthenticated, _perm("bots.export_customer")]
    renderer_classes = [JSONRenderer, ZipRenderer]

    @extend_schema(
        operation_id="customers_export",
        summary="Export all data of one customer (PIPL)",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="JSON files in a ZIP"),
            403: OpenApiResponse(description="no bots.export_customer permission"),
            404: OpenApiResponse(description="unknown customer"),
        },
    )
    def get(self, request, customer_id: int):
        data = privacy.customer_export(customer_id=customer_id, actor=request.user, request=request)
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="customer-{customer_id}.zip"'
        return response


class CustomerEraseView(APIView):
    permission_classes = [IsAuthenticated, _perm("bots.erase_customer")]

    @extend_schema(
        operation_id="customers_erase",
        summary="Erase the personal data of one customer (PIPL); idempotent",
        request=EraseSerializer,
        responses={
            200: ERASE_RESULT,
            400: OpenApiResponse(description="no reason given"),
            403: OpenApiResponse(description="no bots.erase_customer permission"),
            404: OpenApiResponse(description="unknown customer"),
        },
    )
    def post(self, request, customer_id: int):
        serializer = EraseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = privacy.customer_erase(
            customer_id=customer_id, actor=request.user, reason=serializer.validated_data["reason"], request=request
        )
        return Response(result)
