"""Roles with least privilege (core.demo): what each demo user can reach, and seed_demo repairing older data."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from core.demo import USERS, seed_users

pytestmark = pytest.mark.django_db
PASSWORD = "Demo-pass-long-1"


def _perms(username: str) -> set[str]:
    user = User.objects.get(username=username)
    return {p for p in user.get_all_permissions()}


def test_each_role_gets_only_its_permissions():
    seed_users(password=PASSWORD)
    operator = _perms("operator")
    assert {"knowledge.change_keywordrule", "knowledge.add_faq", "knowledge.delete_intent"} <= operator
    assert {"bots.view_conversation", "bots.view_message"} <= operator
    assert not any(p.startswith(("routing.", "auth.")) for p in operator)
    assert {"core.add_sensitiveword", "core.change_sensitivewordlist", "core.change_sensitivehit"} <= operator
    assert not {p for p in operator if p.startswith("core.") and "sensitive" not in p}  # no audit log
    assert {"bots.view_outbox", "bots.view_channel"} <= operator
    assert not {p for p in operator if p.startswith("bots.") and not p.startswith("bots.view_")}

    supervisor = _perms("supervisor")
    assert {"routing.view_ticket", "routing.change_ticket", "bots.view_conversation", "bots.view_message"} <= supervisor
    assert {p for p in supervisor if not p.split(".")[1].startswith("view_")} == {
        "routing.change_ticket",
        "bots.export_customer",
        "bots.erase_customer",
    }
    assert "core.view_auditlog" not in supervisor

    assert _perms("auditor") == {"core.view_auditlog"}
    assert _perms("agent1") == set()
    agent = User.objects.get(username="agent1")
    assert not agent.is_staff and list(agent.groups.values_list("name", flat=True)) == ["agent"]
    assert User.objects.get(username="admin").is_superuser
    assert {u.username for u in User.objects.all()} == {u for u, *_ in USERS}


def test_seed_users_repairs_old_demo_groups_and_users_without_touching_passwords():
    # what an older version created: an operator group with knowledge only, agents as staff, no auditor
    old_operator = Group.objects.create(name="operator")
    old_operator.permissions.set(Permission.objects.filter(content_type__app_label="knowledge"))
    agent = User.objects.create_user("agent1", password="older-password-1", is_staff=True)
    agent.groups.add(Group.objects.create(name="agent"))
    operator = User.objects.create_user("operator", password="older-password-2", is_staff=True)
    hashes = dict(User.objects.values_list("username", "password"))

    seed_users(password=PASSWORD)

    assert "bots.view_message" in _perms("operator")
    assert not User.objects.get(username="agent1").is_staff
    assert list(User.objects.get(username="operator").groups.values_list("name", flat=True)) == ["operator"]
    assert User.objects.get(username="auditor").check_password(PASSWORD)
    for username, password_hash in hashes.items():
        assert User.objects.get(username=username).password == password_hash
    assert operator.pk == User.objects.get(username="operator").pk

    # a second run changes nothing
    state = (
        list(User.objects.order_by("pk").values_list("username", "password", "is_staff", "is_superuser")),
        {g.name: sorted(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()},
        sorted(User.groups.through.objects.values_list("user_id", "group_id")),
    )
    assert seed_users(password=PASSWORD) == {"groups": 0, "users": 0}
    assert state == (
        list(User.objects.order_by("pk").values_list("username", "password", "is_staff", "is_superuser")),
        {g.name: sorted(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()},
        sorted(User.groups.through.objects.values_list("user_id", "group_id")),
    )


@pytest.mark.parametrize(
    ("username", "url", "status"),
    [
        ("operator", "/admin/knowledge/keywordrule/", 200),
        ("operator", "/admin/bots/message/", 200),
        ("operator", "/admin/auth/user/", 403),
        ("operator", "/admin/routing/ticket/", 403),
        ("operator", "/admin/core/auditlog/", 403),
        ("operator", "/admin/core/sensitivewordlist/add/", 200),
        ("operator", "/admin/bots/channel/", 200),
        ("operator", "/admin/bots/outbox/", 200),
        ("supervisor", "/admin/core/sensitivewordlist/add/", 403),
        ("supervisor", "/admin/routing/ticket/", 200),
        ("supervisor", "/admin/bots/conversation/", 200),
        ("supervisor", "/admin/knowledge/keywordrule/add/", 403),
        ("supervisor", "/admin/core/auditlog/", 403),
        ("auditor", "/admin/core/auditlog/", 200),
        ("auditor", "/admin/bots/message/", 403),
        ("auditor", "/admin/knowledge/keywordrule/", 403),
    ],
)
def test_admin_pages_per_role(client, username, url, status):
    seed_users(password=PASSWORD)
    client.force_login(User.objects.get(username=username))
    assert client.get(url).status_code == status


def test_agents_use_the_plain_login_not_the_admin(client):
    seed_users(password=PASSWORD)
    response = client.post("/admin/login/?next=/admin/", {"username": "agent1", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # not staff: refused
    to_login = client.get("/console/")
    assert to_login.status_code == 302 and to_login["Location"] == "/accounts/login/?next=/console/"
    response = client.post("/accounts/login/", {"username": "agent1", "password": PASSWORD, "next": "/console/"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.session["_auth_user_id"] == str(User.objects.get(username="agent1").pk)
    assert client.get("/admin/").status_code == 302  # still no admin


def test_seed_demo_command_creates_the_auditor(redis_clean):
    call_command("seed_demo")
    auditor = User.objects.get(username="auditor")
    assert auditor.is_staff and auditor.has_perm("core.view_auditlog")
