"""The chat simulator: a web channel customer that staff can play in the browser."""

import json
import uuid

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from bots import selectors, services
from bots.channels.base import InboundMessage
from core.errors import ApplicationError
from core.permissions import can_use_simulator

MAX_TEXT = 5000


def simulator_required(view):
    """Staff login (redirect to the admin login) and then the simulator permission (403 for e.g. the auditor)."""

    def check(user) -> bool:
        if can_use_simulator(user):
            return True
        raise PermissionDenied

    return staff_member_required(user_passes_test(check)(view))


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApplicationError(_("The request body is not valid JSON."), code="bad_json") from exc
    if not isinstance(body, dict):
        raise ApplicationError(_("The request body must be a JSON object."), code="bad_json")
    return body


def _channel():
    channel = selectors.web_channel_default()
    if channel is None:
        raise ApplicationError(
            _("No web channel exists; run `manage.py seed_demo`."), code="no_web_channel", status=409
        )
    return channel


@simulator_required
@require_GET
def simulator_page(request):
    return render(request, "bots/simulator.html", {"customers": selectors.web_customers_list()})


@simulator_required
@require_POST
def customer_create(request):
    nickname = str(_json_body(request).get("nickname", "")).strip()[:50] or _("Test customer")
    customer = services.web_customer_create(channel=_channel(), nickname=nickname)
    return JsonResponse({"id": customer.id, "nickname": customer.nickname}, status=201)


@simulator_required
@require_GET
def customer_messages(request, customer_id: int):
    customer = selectors.web_customer_get(customer_id=customer_id)
    if customer is None:
        raise Http404
    messages = [services.message_payload(m) for m in selectors.customer_messages(customer=customer)]
    return JsonResponse({"customer": {"id": customer.id, "nickname": customer.nickname}, "messages": messages})


@simulator_required
@require_POST
def message_send(request, customer_id: int):
    customer = selectors.web_customer_get(customer_id=customer_id)
    if customer is None:
        raise Http404
    body = _json_body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApplicationError(_("Type a message first."), code="empty_text")
    if len(text) > MAX_TEXT:
        raise ApplicationError(_("The message is too long."), code="text_too_long")
    client_id = str(body.get("client_msg_id") or uuid.uuid4().hex)[:64]
    message, created = services.message_receive(
        channel=customer.channel,
        inbound=InboundMessage(
            external_id=f"web:{customer.id}:{client_id}", sender_id=customer.external_id, type="text", text=text
        ),
    )
    return JsonResponse({"id": message.id, "created": created}, status=201 if created else 200)
