import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bots import services
from bots.channels.base import InboundMessage
from knowledge.models import KeywordRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    user = User.objects.create_user("op", password="x-long-password-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="knowledge")
        | Permission.objects.filter(codename__in=["view_conversation", "view_message"])
    )
    return user


def test_api_requires_authentication():
    response = APIClient().get("/api/v1/conversations/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "authentication_failed")


def test_token_auth_lists_conversations_and_messages(operator, web_channel):
    message, _ = services.message_receive(
        channel=web_channel, inbound=InboundMessage(external_id="a1", sender_id="w1", type="text", text="你好")
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=operator).key)
    conversations = client.get("/api/v1/conversations/").json()
    assert conversations["count"] == 1
    conversation_id = conversations["results"][0]["id"]
    messages = client.get(f"/api/v1/conversations/{conversation_id}/messages/").json()["results"]
    assert [m["content"] for m in messages] == ["你好"]
    assert client.get(f"/api/v1/messages/?conversation={conversation_id}").json()["count"] == 1


def test_keyword_rule_crud_and_validation(operator, redis_clean, django_capture_on_commit_callbacks):
    client = APIClient()
    client.force_authenticate(operator)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/v1/keyword-rules/", {"keyword": "运费", "reply": "满99包邮", "match_type": "contains"}, format="json"
        )
    assert created.status_code == 201, created.json()
    rule_id = created.json()["id"]
    assert redis_clean.get("kefu:ver:keyword_rules") == "1"  # workers reload rules
    bad = client.post("/api/v1/keyword-rules/", {"keyword": "(", "reply": "x", "match_type": "regex"}, format="json")
    assert bad.status_code == 400
    assert "keyword" in bad.json()["error"]["fields"]
    patched = client.patch(f"/api/v1/keyword-rules/{rule_id}/", {"priority": 300}, format="json")
    assert patched.json()["priority"] == 300
    assert client.delete(f"/api/v1/keyword-rules/{rule_id}/").status_code == 204
    assert not KeywordRule.objects.exists()


def test_staff_without_view_permission_cannot_read_conversations(web_channel):
    auditor = User.objects.create_user("aud", password="x-long-password-1", is_staff=True)
    client = APIClient()
    client.force_authenticate(auditor)
    assert client.get("/api/v1/conversations/").status_code == 403
    assert client.get("/api/v1/messages/").status_code == 403


def test_user_without_permission_cannot_write_rules(web_channel):
    agent = User.objects.create_user("agent", password="x-long-password-1", is_staff=True)
    client = APIClient()
    client.force_authenticate(agent)
    assert client.post("/api/v1/keyword-rules/", {"keyword": "a", "reply": "b"}, format="json").status_code == 403


def test_schema_and_docs_render(admin_client):
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/keyword-rules/" in schema.content
    docs = admin_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()  # served from drf-spectacular-sidecar, works offline


def test_errors_are_json_without_traceback(admin_client, web_channel):
    customer = services.web_customer_create(channel=web_channel, nickname="x")
    url = f"/simulator/api/customers/{customer.id}/send/"
    bad = admin_client.post(url, data=b"{not json", content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_json"
    assert b"Traceback" not in bad.content
    missing = admin_client.get("/api/v1/conversations/999999/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
