from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.health import health_report


@never_cache
@require_GET
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def _error(request, status: int, code: str, message: str):
    wants_json = request.path.startswith(("/api/", "/wechat/", "/bridge/", "/healthz")) or (
        "application/json" in request.headers.get("Accept", "")
    )
    if wants_json:
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def error_400(request, exception=None):
    return _error(request, 400, "bad_request", _("The request could not be understood."))


def error_403(request, exception=None):
    return _error(request, 403, "forbidden", _("You do not have permission to do this."))


def error_404(request, exception=None):
    return _error(request, 404, "not_found", _("The page you asked for does not exist."))


def error_500(request):
    return _error(request, 500, "server_error", _("Something went wrong on our side; please try again."))
