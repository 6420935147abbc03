"""API rates per user and per anonymous address (DRF throttles, counters in the Redis cache)."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

pytestmark = pytest.mark.django_db


def test_rates_are_configured_for_users_and_anonymous_clients():
    config = settings.REST_FRAMEWORK
    assert "rest_framework.throttling.UserRateThrottle" in config["DEFAULT_THROTTLE_CLASSES"]
    assert "rest_framework.throttling.AnonRateThrottle" in config["DEFAULT_THROTTLE_CLASSES"]
    assert config["DEFAULT_THROTTLE_RATES"] == {"anon": "60/min", "user": "600/min"}
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_a_user_over_the_rate_gets_429_in_our_error_format(redis_clean, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    user = User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    statuses = [client.get("/api/v1/conversations/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/keyword-rules/")  # the rate is per user, across endpoints
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "throttled" and body["error"]["message"]
    assert int(response["Retry-After"]) > 0

    other = User.objects.create_superuser("other", "other@example.com", "Other-pass-long-1")
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=other).key)
    assert fresh.get("/api/v1/conversations/").status_code == 200


def test_anonymous_clients_are_throttled_per_address(redis_clean, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "2/min"})
    client = APIClient()
    statuses = [client.get("/api/schema/", REMOTE_ADDR="203.0.113.50").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get("/api/schema/", REMOTE_ADDR="203.0.113.51").status_code == 200
