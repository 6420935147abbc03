"""Hostile input at the edge: NUL characters (PostgreSQL refuses them in text, so they used to become 500s)."""

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(redis_clean):
    user = User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/conversations/?status=%00",  # found by schemathesis: a 500 before the guard
        "/api/v1/conversations/?status=b%23%F2%BE%8D%A5%07q%00x&page=40001",
        "/api/v1/orders/?number=%00",
        "/api/v1/keyword-rules/?search=a%00b",
    ],
)
def test_nul_in_the_query_is_a_clean_400(api, url):
    response = api.get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_nul_in_a_json_body_is_refused_by_the_serializer(api):
    response = api.post("/api/v1/keyword-rules/", {"name": "x\x00", "keyword": "k", "reply": "r"}, format="json")
    assert response.status_code == 400


def test_nul_on_a_page_is_a_400_page(client):
    response = client.get("/accounts/login/?next=%00")
    assert response.status_code == 400
    assert "text/html" in response["Content-Type"]
