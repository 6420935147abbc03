"""``/dashboard/``: the page (``templates/analytics/dashboard.html`` + ``static/js/dashboard.js``, ECharts from
``static/vendor``) and the exports of its tables as CSV or xlsx. The page's numbers come from the JSON API
(``analytics.api``); login required, operators and supervisors only (agents get 403)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from analytics import selectors
from analytics.forms import DEFAULT_DAYS, FilterForm
from analytics.permissions import may_view_dashboard
from core.audit import Action, audit_record

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _check(request) -> None:
    if not may_view_dashboard(request.user):
        raise PermissionDenied


@require_GET
@login_required
def dashboard_page(request):
    _check(request)
    from bots.models import Channel
    from routing.models import AgentGroup

    today = timezone.localdate()
    context = {
        "channels": Channel.objects.order_by("name").values("id", "name", "slug"),
        "groups": AgentGroup.objects.order_by("name").values("id", "name"),
        "date_from": (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "date_to": today.isoformat(),
        "tables": [(t.name, t.title) for t in selectors.TABLES.values()],
        "table_columns": {
            t.name: {"title": str(t.title), "columns": [[key, str(label)] for key, label in t.columns]}
            for t in selectors.TABLES.values()
        },
    }
    return render(request, "analytics/dashboard.html", context)


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        value = "、".join(str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # customers' words must not become spreadsheet formulas
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).replace(tzinfo=None)
    return value


@require_GET
@login_required
def table_export(request, name: str, fmt: str):
    _check(request)
    table = selectors.TABLES.get(name)
    if table is None or fmt not in CONTENT_TYPES:
        raise Http404
    if connection.vendor != "postgresql":
        return HttpResponse("The dashboard needs PostgreSQL (not available in embedded mode).", status=503)
    form = FilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("; ".join(str(e) for errors in form.errors.values() for e in errors))
    f = form.filters()
    rows = selectors.table_rows(name, f)
    header = [str(label) for _key, label in table.columns]
    body = [[_cell(row.get(key)) for key, _label in table.columns] for row in rows]
    audit_record(
        action=Action.EXPORT,
        target=f"analytics.{name}",
        after={"format": fmt, "rows": len(body), **f.as_dict()},
        request=request,
    )
    filename = f"kefu-{name}-{f.first:%Y%m%d}-{f.last:%Y%m%d}.{fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("\ufeff")  # a BOM: Excel opens UTF-8 CSV with Chinese text correctly
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(body)
        content: bytes = buffer.getvalue().encode("utf-8")
    else:
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title=name[:31])
        sheet.append(header)
        for line in body:
            sheet.append(line)
        out = io.BytesIO()
        workbook.save(out)
        content = out.getvalue()
    response = HttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
