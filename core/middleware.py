import logging
import re
import uuid

from django.conf import settings
from django.http import JsonResponse

from core import logging as klog
from core.errors import ApplicationError

logger = logging.getLogger("kefu.request")
# a client-supplied X-Request-ID is kept only when it looks like one (no log or header injection)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Binds a request id into every log line of the request; ``request.request_id`` carries it (audit log)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex[:16]
        with klog.bound(request_id=request.request_id):
            return self.get_response(request)


class NullByteGuardMiddleware:
    """400 for a NUL character in the path or the query string (raw or %00): no view needs one, PostgreSQL
    rejects it in text (a 500 wherever a parameter reaches a query), and it is a classic filter-bypass trick.
    Bodies are covered by the form and serializer fields, which refuse NUL themselves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            from core.views import error_400

            return error_400(request)
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy (``KEFU_CSP`` + path-scoped ``KEFU_CSP_EXTRA``, see core.security) and
    Permissions-Policy on every response that does not set its own. Django's SecurityMiddleware adds
    X-Content-Type-Options, Referrer-Policy and Cross-Origin-Opener-Policy; XFrameOptionsMiddleware X-Frame-Options."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from core.security import content_security_policy

        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path)
        if "Permissions-Policy" not in response and settings.KEFU_PERMISSIONS_POLICY:
            response["Permissions-Policy"] = settings.KEFU_PERMISSIONS_POLICY
        return response


class ApplicationErrorMiddleware:
    """Turns an ApplicationError raised in a plain Django view into a JSON error with its code."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, ApplicationError):
            logger.info("application error", extra={"code": exception.code, "path": request.path})
            return JsonResponse(exception.as_dict(), status=exception.status)
        return None
