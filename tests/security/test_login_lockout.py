"""Login brute force: django-axes locks a username+IP after 5 failures, on the admin login and /accounts/login/;
the locked-out user cannot log in even with the right password until the cool-off ends."""

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.utils import timezone

pytestmark = pytest.mark.django_db
PASSWORD = "Right-pass-long-1"
LOGIN_PAGES = ["/admin/login/?next=/admin/", "/accounts/login/"]


@pytest.fixture
def staff():
    return User.objects.create_user("mallory-target", password=PASSWORD, is_staff=True)


def _fail(client, url: str, times: int, ip: str = "203.0.113.9"):
    return [
        client.post(url, {"username": "mallory-target", "password": f"wrong-{i}"}, REMOTE_ADDR=ip) for i in range(times)
    ]


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_five_failures_lock_the_account_even_for_the_right_password(client, staff, settings, url):
    assert settings.AXES_FAILURE_LIMIT == 5
    responses = _fail(client, url, 4)
    assert [r.status_code for r in responses] == [200] * 4  # the form again, with an error
    fifth = _fail(client, url, 1)[0]
    assert fifth.status_code == 429
    page = fifth.content.decode()
    assert "账户已锁定" in page and "30 分钟" in page

    right = client.post(url, {"username": "mallory-target", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session

    # another address is not locked (lockout is per username + IP)
    other = client.post(url, {"username": "mallory-target", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1")
    assert other.status_code == 302 and client.session["_auth_user_id"] == str(staff.pk)


def test_the_lock_ends_after_the_cool_off(client, staff):
    _fail(client, LOGIN_PAGES[1], 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=31))
    right = client.post(LOGIN_PAGES[1], {"username": "mallory-target", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9")
    assert right.status_code == 302


def test_a_success_resets_the_failure_count(client, staff):
    url = LOGIN_PAGES[1]
    _fail(client, url, 4)
    assert (
        client.post(url, {"username": "mallory-target", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9").status_code
        == 302
    )
    client.logout()
    assert [r.status_code for r in _fail(client, url, 4)] == [200] * 4


def test_lockout_answers_json_to_api_clients(client, staff):
    responses = [
        client.post(
            "/accounts/login/",
            {"username": "mallory-target", "password": "nope-nope-1"},
            REMOTE_ADDR="203.0.113.9",
            HTTP_ACCEPT="application/json",
        )
        for _ in range(5)
    ]
    assert responses[-1].status_code == 429
    assert responses[-1].json()["error"]["code"] == "locked_out"


def test_login_pages_are_csrf_protected(staff):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    for url in LOGIN_PAGES:
        assert strict.post(url, {"username": "mallory-target", "password": PASSWORD}).status_code == 403
