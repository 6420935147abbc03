"""Property-based API fuzzing: schemathesis generates requests from /api/schema/ (valid and invalid input) and
every answer must be free of 5xx. Runs in-process against Django's WSGI handler on the test database, with a
superuser token so every operation is reached, at most MAX_EXAMPLES examples per operation."""

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from schemathesis.checks import not_a_server_error

MAX_EXAMPLES = 25


@pytest.fixture
def api_token(db, redis_clean, monkeypatch, web_channel):
    # like Django's test client: keep the test's connection (and its transaction) open across requests
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # the fuzzer sends a few hundred requests in seconds: lift the per-user rate for this test only
    rates = {"user": "100000/min", "anon": "100000/min"}
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", rates)
    user = User.objects.create_superuser("fuzzer", "fuzzer@example.com", "Fuzzer-pass-long-1")
    yield Token.objects.create(user=user).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# loaded at collection through the whole stack (the schema view needs no database); one test per operation
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_answers_5xx(case, api_token):
    case.call_and_validate(headers={"Authorization": f"Token {api_token}"}, checks=[not_a_server_error])
