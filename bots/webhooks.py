"""Channel webhooks: verify → parse (the channel adapter) → ``message_receive`` per message → answer.

- ``/wechat/oa/<slug>/``  公众号: GET URL check; POST pushes (plain, compatible, safe mode). A message gets a
  passive reply when the bot decides within the budget (see ``bots.services.inbound.passive_reply_wait``),
  otherwise ``success`` and the outbox sends it through the customer-service API.
- ``/wechat/kf/<slug>/``  微信客服: GET URL check; POST callback → 200 with an empty body at once, and a Celery
  task pulls the messages with ``sync_msg``.
- ``/bridge/<slug>/``     personal WeChat bridge: HMAC-signed JSON (``X-Kefu-Timestamp``, ``X-Kefu-Signature``).

Errors are JSON ``{"error": {"code", "message"}}``: unknown/disabled channel or wrong kind 404, bad signature,
stale timestamp or replay 403 (nothing stored), malformed or forbidden XML/JSON 400, body over 1 MiB 413.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from bots import services
from bots.channels.base import ChannelError, SignatureError
from bots.channels.bridge import BridgeAdapter
from bots.channels.oa import ACK, OfficialAccountAdapter
from bots.channels.registry import adapter_for
from bots.channels.wecom_kf import WecomKfAdapter
from bots.models import Channel, adapter_config
from bots.services.inbound import passive_budget, passive_reply_wait
from core import fastsql
from core import logging as klog
from core import redis as kredis
from core.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB; WeChat pushes are a few KB
MAX_CLOCK_SKEW = 300  # seconds; a signed request older (or newer) than this is refused as a replay
REPLAY_TTL = 2 * MAX_CLOCK_SKEW


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _enabled_channel(*, slug: str, kind: str) -> Channel | None:
    """The enabled channel of ``kind`` with ``slug``, read on every request (no cache: a disabled channel or a
    new secret applies at once) with ``fastsql.first_row``."""
    return fastsql.first_row(Channel, {"slug": slug, "kind": kind}, ("enabled",))


def _webhook(kind: str, methods: list[str]) -> Callable:
    """Common frame of the three webhooks: CSRF-exempt, allowed methods, the channel looked up by slug and
    kind (404 otherwise), protocol and application errors mapped to JSON without a traceback."""

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str) -> HttpResponse:
            started = time.monotonic()
            if request.method not in methods:
                response = _error(405, "method_not_allowed", f"use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
                return response
            channel = _enabled_channel(slug=slug, kind=kind)
            if channel is None:
                return _error(404, "unknown_channel", "no enabled channel of this kind with this slug")
            with klog.bound(channel=channel.slug):
                try:
                    return view(request, channel, started)
                except ChannelError as exc:
                    level = logging.WARNING if isinstance(exc, SignatureError) else logging.INFO
                    logger.log(level, "webhook refused", extra={"code": exc.code, "status": exc.status})
                    return _error(exc.status, exc.code, exc.message)
                except ApplicationError as exc:
                    logger.info("webhook refused", extra={"code": exc.code, "status": exc.status})
                    return _error(exc.status, exc.code, exc.message)

        return wrapper

    return decorator


def _read_body(request: HttpRequest) -> bytes:
    """The raw body, refusing more than ``MAX_BODY_BYTES`` whatever Content-Length claims (413)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ChannelError("bad Content-Length", code="bad_request", status=400) from None
    if declared > MAX_BODY_BYTES:
        raise ChannelError("body larger than 1 MiB", code="body_too_large", status=413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ChannelError("body larger than 1 MiB", code="body_too_large", status=413)
    return body


def _check_fresh(timestamp: str | None, channel: Channel) -> None:
    """WeChat/WeCom sign a timestamp but no expiry; refuse pushes far from now (a replayed capture)."""
    skew = int(channel.settings.get("max_clock_skew") or MAX_CLOCK_SKEW)
    try:
        value = int(timestamp or "")
    except ValueError:
        raise SignatureError("missing or bad timestamp") from None
    if abs(time.time() - value) > skew:
        raise SignatureError("timestamp outside the allowed window")


def _adapter(channel: Channel):
    return adapter_for(channel.kind, slug=channel.slug, config=adapter_config(channel))


# --- 公众号 --------------------------------------------------------------------------------------------------


@_webhook(Channel.Kind.OA, ["GET", "POST"])
def oa_webhook(request: HttpRequest, channel: Channel, started: float) -> HttpResponse:
    adapter = _adapter(channel)
    assert isinstance(adapter, OfficialAccountAdapter)
    if request.method == "GET":
        return HttpResponse(adapter.verify_url(request.GET), content_type="text/plain; charset=utf-8")
    body = _read_body(request)
    inbound = adapter.parse_request(request.GET, body)[0]  # signatures first, then the XML
    _check_fresh(request.GET.get("timestamp"), channel)
    budget = passive_budget(channel) if inbound.type != "event" else 0.0
    deadline = started + budget
    message, created = services.message_receive(
        channel=channel, inbound=inbound, passive_wait=max(deadline - time.monotonic(), 0.0)
    )
    reply = passive_reply_wait(message=message, created=created, deadline=deadline) if budget else None
    if reply is None:
        return HttpResponse(ACK, content_type="text/plain; charset=utf-8")
    return HttpResponse(adapter.render_passive_reply(inbound, reply.content), content_type="text/xml; charset=utf-8")


# --- 微信客服 ------------------------------------------------------------------------------------------------


@_webhook(Channel.Kind.KF, ["GET", "POST"])
def kf_webhook(request: HttpRequest, channel: Channel, started: float) -> HttpResponse:
    adapter = _adapter(channel)
    assert isinstance(adapter, WecomKfAdapter)
    if request.method == "GET":
        return HttpResponse(adapter.verify_url(request.GET), content_type="text/plain; charset=utf-8")
    callback = adapter.parse_callback(request.GET, _read_body(request))
    _check_fresh(request.GET.get("timestamp"), channel)
    if callback.event == "kf_msg_or_event":
        from bots.tasks import kf_sync

        try:
            kf_sync.delay(channel.id, callback.token, callback.open_kfid)
        except Exception:  # broker down: a non-200 makes WeCom call again later
            logger.exception("could not queue the kf sync")
            return _error(503, "queue_unavailable", "try again later")
    return HttpResponse(b"", status=200)


# --- personal WeChat bridge ----------------------------------------------------------------------------


def _replay_guard(channel: Channel, request: HttpRequest) -> str | None:
    """Refuse a signature seen before (403). Returns the Redis key to release when storing fails."""
    signature = request.headers.get("X-Kefu-Signature", "").strip().lower()
    if not signature:
        return None  # url_token mode: nothing to remember
    key = kredis.key("bridge", "sig", channel.id, signature)
    try:
        if not kredis.client().set(key, "1", nx=True, ex=REPLAY_TTL):
            raise SignatureError("replayed request")
    except RedisError:
        logger.warning("replay check skipped: Redis unavailable", exc_info=True)
        return None
    return key


@_webhook(Channel.Kind.BRIDGE, ["POST"])
def bridge_webhook(request: HttpRequest, channel: Channel, started: float) -> HttpResponse:
    adapter = _adapter(channel)
    assert isinstance(adapter, BridgeAdapter)
    body = _read_body(request)
    messages = adapter.parse_request(request.headers, body, query=request.GET)
    if any(not m.external_id or not m.sender_id for m in messages):
        raise ChannelError("every message needs an id and a sender", code="bad_request", status=400)
    replay_key = _replay_guard(channel, request)
    try:
        results = [services.message_receive(channel=channel, inbound=inbound) for inbound in messages]
    except Exception:
        if replay_key:  # let the bridge retry the same signed request
            kredis.client().delete(replay_key)
        raise
    stored = [message.id for message, created in results if created]
    return JsonResponse({"ok": True, "received": len(stored), "duplicates": len(results) - len(stored)})
