"""Dashboard API (``/api/v1/analytics/``): every panel in one response, or one table. Session or token auth;
operators and supervisors only (``analytics.permissions``). Query parameters: ``from``, ``to`` (YYYY-MM-DD, local
days, inclusive; default the last 30 days, at most 366), ``channel`` and ``group`` (ids)."""

from __future__ import annotations

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.forms import FilterForm
from analytics.permissions import CanViewDashboard
from core.errors import ApplicationError

FILTER_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first local day (default: 29 days before `to`)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last local day (default: today)"),
    OpenApiParameter("channel", OpenApiTypes.INT, description="channel id"),
    OpenApiParameter("group", OpenApiTypes.INT, description="agent group id (conversations handed to it)"),
]


def filters_from(request) -> selectors.Filters:
    if connection.vendor != "postgresql":
        raise ApplicationError(
            "The dashboard needs PostgreSQL (not available in embedded mode).", code="unavailable", status=503
        )
    form = FilterForm(request.query_params)
    if not form.is_valid():
        errors = [str(e) for field_errors in form.errors.values() for e in field_errors]
        raise ApplicationError("; ".join(errors), code="invalid_filters", status=400)
    return form.filters()


class DashboardView(APIView):
    permission_classes = [IsAuthenticated, CanViewDashboard]

    @extend_schema(parameters=FILTER_PARAMETERS, responses=OpenApiTypes.OBJECT, summary="All dashboard panels")
    def get(self, request):
        return Response(selectors.dashboard(filters_from(request)))


class TableView(APIView):
    permission_classes = [IsAuthenticated, CanViewDashboard]

    @extend_schema(parameters=FILTER_PARAMETERS, responses=OpenApiTypes.OBJECT, summary="One dashboard table")
    def get(self, request, name: str):
        table = selectors.TABLES.get(name)
        if table is None:
            raise ApplicationError("unknown table", code="not_found", status=404)
        f = filters_from(request)
        return Response(
            {
                "table": name,
                "title": str(table.title),
                "columns": [{"key": key, "label": str(label)} for key, label in table.columns],
                "rows": selectors.table_rows(name, f),
                "filters": f.as_dict(),
            }
        )
