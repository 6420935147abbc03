import logging
import uuid

from django.http import JsonResponse

from core import logging as klog
from core.errors import ApplicationError

logger = logging.getLogger("kefu.request")


class RequestContextMiddleware:
    """Binds a request id into every log line of the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with klog.bound(request_id=request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]):
            return self.get_response(request)


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
