"""The audit log: what a row holds, encryption at rest, append-only (ORM and PostgreSQL triggers), and the trail
the admin writes for user and group changes."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.db import IntegrityError, connection, transaction
from django.test import RequestFactory
from django.utils import timezone

from core import audit
from core.admin import AuditedGroupAdmin, audited_action
from core.models import AppendOnlyError, AuditLog

pytestmark = pytest.mark.django_db
PASSWORD = "Adm1n-pass-long"


@pytest.fixture
def root(client):
    user = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(user)
    return user


def _raw(column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM core_auditlog WHERE id = %s", [pk])  # noqa: S608 (fixed names)
        return cursor.fetchone()[0]


def test_audit_record_keeps_who_what_where_and_encrypts_the_values(root):
    request = RequestFactory().post("/x", REMOTE_ADDR="203.0.113.7")
    request.user = root
    request.request_id = "req-123"
    target = Group.objects.create(name="售后主管")
    entry = audit.audit_record(
        action="change", target=target, before={"name": "old 名字"}, after={"name": "售后主管"}, request=request
    )
    entry = AuditLog.objects.get(pk=entry.pk)
    assert (entry.actor_id, entry.actor_username, entry.action) == (root.pk, "root", "change")
    assert (entry.target_model, entry.target_pk, entry.target_repr) == ("auth.group", str(target.pk), "售后主管")
    assert (entry.before, entry.after) == ({"name": "old 名字"}, {"name": "售后主管"})
    assert (entry.ip, entry.request_id) == ("203.0.113.7", "req-123")
    for column in ("before", "after", "target_repr"):
        stored = _raw(column, entry.pk)
        assert stored.startswith("kefu1$") and "售后" not in stored and "名字" not in stored


def test_orm_refuses_to_change_or_delete_audit_rows():
    entry = audit.audit_record(actor="system", action="test")
    entry.action = "tampered"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get(pk=entry.pk).action == "test"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE core_auditlog SET action = 'tampered'",
        "UPDATE core_auditlog SET actor_username = 'someone' WHERE id = %(id)s",
        "DELETE FROM core_auditlog WHERE id = %(id)s",
        "DELETE FROM core_auditlog",
    ],
)
def test_postgres_trigger_refuses_update_and_delete(sql):
    entry = audit.audit_record(actor="system", action="test")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql % {"id": entry.pk})
    assert AuditLog.objects.filter(pk=entry.pk, action="test", actor_username="system").exists()


def test_postgres_trigger_refuses_truncate_without_the_maintenance_setting():
    entry = audit.audit_record(actor="system", action="test")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL kefu.audit_allow_truncate = 'off'")
        cursor.execute("TRUNCATE core_auditlog")
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_snapshot_and_diff_never_carry_secrets():
    user = User(username="u1", email="a@example.com")
    user.set_password("first-secret-pass")
    before = audit.snapshot(user)
    user.set_password("second-secret-pass")
    user.email = "b@example.com"
    old, new = audit.diff(before, audit.snapshot(user))
    assert old == {"email": "a@example.com", "password": "<redacted>"}
    assert new == {"email": "b@example.com", "password": "<changed>"}
    created = audit.redacted(audit.snapshot(user), secret_as=audit.SET)
    assert created["password"] == "<set>" and "second" not in str(created)


# --- the admin -------------------------------------------------------------------------------------------
def _user_form(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": timezone.localtime(user.date_joined).strftime("%Y-%m-%d"),
        "date_joined_1": timezone.localtime(user.date_joined).strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_changing_a_user_in_the_admin_is_audited_with_before_and_after(client, root):
    agents = Group.objects.create(name="agent")
    user = User.objects.create_user("agent9", "old@example.com", "Agent-pass-long-1", is_staff=True)
    User.objects.filter(pk=user.pk).update(date_joined=user.date_joined.replace(microsecond=0))  # as the form sends it
    user.refresh_from_db()
    response = client.post(
        f"/admin/auth/user/{user.pk}/change/",
        _user_form(user, email="new@example.com", is_staff="", groups=[agents.pk]),
        REMOTE_ADDR="198.51.100.4",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditLog.objects.get(action="change", target_model="auth.user")
    assert entry.target_pk == str(user.pk) and entry.target_repr == "agent9"
    assert (entry.actor_id, entry.actor_username, entry.ip) == (root.pk, "root", "198.51.100.4")
    assert entry.before == {"email": "old@example.com", "groups": [], "is_staff": True}
    assert entry.after == {"email": "new@example.com", "groups": ["agent"], "is_staff": False}
    assert "password" not in entry.before and "password" not in entry.after
    assert entry.request_id


def test_password_change_in_the_admin_is_audited_without_the_hash(client, root):
    user = User.objects.create_user("agent9", password="Agent-pass-long-1")
    old_hash = user.password
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "N3w-agent-pass-long", "password2": "N3w-agent-pass-long", "usable_password": "true"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    entry = AuditLog.objects.get(target_model="auth.user", target_pk=str(user.pk))
    assert (entry.before, entry.after) == ({"password": "<redacted>"}, {"password": "<changed>"})
    assert old_hash not in str(entry.before) and user.password not in str(entry.after)


def test_adding_and_deleting_a_user_in_the_admin_is_audited(client, root):
    response = client.post(
        "/admin/auth/user/add/",
        {"username": "newbie", "password1": "Newbie-pass-long-1", "password2": "Newbie-pass-long-1"},
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    created = AuditLog.objects.get(action="create", target_model="auth.user")
    assert created.target_pk == str(user.pk)
    assert created.after["username"] == "newbie" and created.after["password"] == "<set>"
    assert user.password not in str(created.after)

    response = client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not User.objects.filter(pk=user.pk).exists()
    deleted = AuditLog.objects.get(action="delete", target_model="auth.user")
    assert deleted.target_pk == str(user.pk) and deleted.before["username"] == "newbie"
    assert deleted.before["password"] == "<redacted>"


def test_group_permission_change_in_the_admin_is_audited(client, root):
    group = Group.objects.create(name="operator")
    perm = Permission.objects.get(codename="view_auditlog")
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "operator", "permissions": [perm.pk]})
    assert response.status_code == 302
    entry = AuditLog.objects.get(action="change", target_model="auth.group")
    assert entry.before == {"permissions": []}
    assert entry.after == {"permissions": [str(perm)]}


def test_bulk_delete_action_records_every_deleted_group(client, root):
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    response = client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )
    assert response.status_code == 302
    assert sorted(AuditLog.objects.filter(action="delete").values_list("target_pk", flat=True)) == sorted(
        str(g.pk) for g in groups
    )


def test_audited_action_records_a_summary_and_each_change(root):
    @audited_action(description="rename")
    def rename(modeladmin, request, queryset):
        for group in queryset:
            group.name = group.name.upper()
            group.save()

    groups = [Group.objects.create(name=n) for n in ("a", "b")]
    request = RequestFactory().post("/admin/auth/group/")
    request.user = root
    rename(AuditedGroupAdmin(Group, admin.site), request, Group.objects.filter(pk__in=[g.pk for g in groups]))
    rows = AuditLog.objects.filter(action="action:rename").order_by("id")
    summary, *changes = rows
    assert summary.target_model == "auth.group" and summary.after["count"] == 2
    assert sorted((c.before["name"], c.after["name"]) for c in changes) == [("a", "A"), ("b", "B")]
    assert rename.short_description == "rename"


# --- who may read the log -------------------------------------------------------------------------------
@pytest.fixture
def entry():
    return audit.audit_record(actor="system", action="test", after={"x": 1})


def _member(group_name: str, codenames: list[str]) -> User:
    group = Group.objects.create(name=group_name)
    group.permissions.set(Permission.objects.filter(codename__in=codenames))
    user = User.objects.create_user(group_name, password="Pass-long-enough-1", is_staff=True)
    user.groups.add(group)
    return user


def test_auditor_reads_the_log_but_cannot_change_it(client, entry):
    client.force_login(_member("auditor", ["view_auditlog"]))
    listing = client.get("/admin/core/auditlog/")
    assert listing.status_code == 200 and "system" in listing.content.decode()
    detail = client.get(f"/admin/core/auditlog/{entry.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.post(f"/admin/core/auditlog/{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"/admin/core/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/core/auditlog/add/").status_code == 403
    assert AuditLog.objects.get(pk=entry.pk).action == "test"
    # nothing else in the admin
    assert client.get("/admin/auth/user/").status_code == 403


def test_superuser_cannot_change_or_delete_the_log_either(client, root, entry):
    assert client.get(f"/admin/core/auditlog/{entry.pk}/change/").status_code == 200
    assert client.post(f"/admin/core/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/core/auditlog/", {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert AuditLog.objects.filter(pk=entry.pk).exists()
    assert response.status_code in (200, 302)


def test_operator_cannot_see_the_audit_log(client, entry):
    from core.demo import seed_groups

    seed_groups()
    user = User.objects.create_user("op", password="Pass-long-enough-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client.force_login(user)
    assert client.get("/admin/core/auditlog/").status_code == 403
    assert client.get(f"/admin/core/auditlog/{entry.pk}/change/").status_code == 403
    assert "auditlog" not in client.get("/admin/").content.decode()


def test_list_editable_saves_are_audited_with_before_and_after(root):
    from django.contrib.admin import AdminSite
    from django.contrib.messages.storage.cookie import CookieStorage

    from core.admin import AuditedModelAdmin

    class EditableGroupAdmin(AuditedModelAdmin):
        list_display = ("id", "name")
        list_editable = ("name",)

    group = Group.objects.create(name="before-name")
    model_admin = EditableGroupAdmin(Group, AdminSite(name="audit-test"))
    request = RequestFactory().post(
        "/admin/auth/group/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(group.pk),
            "form-0-name": "after-name",
            "_save": "Save",
        },
    )
    request.user = root
    request._messages = CookieStorage(request)
    request._dont_enforce_csrf_checks = True
    response = model_admin.changelist_view(request)
    assert response.status_code == 302
    entry = AuditLog.objects.get(action="change", target_model="auth.group")
    assert (entry.before, entry.after) == ({"name": "before-name"}, {"name": "after-name"})


def _import_export_admin():
    from django.contrib.admin import AdminSite
    from import_export.admin import ImportExportModelAdmin

    from core.admin import AuditedModelAdmin

    class GroupIEAdmin(AuditedModelAdmin, ImportExportModelAdmin):
        pass

    return GroupIEAdmin(Group, AdminSite(name="audit-ie-test"))


def test_exports_are_audited(root):
    from import_export.formats.base_formats import CSV

    Group.objects.create(name="g1")
    request = RequestFactory().get("/admin/auth/group/export/")
    request.user = root
    data = _import_export_admin().get_export_data(CSV(), request, Group.objects.all())
    assert "g1" in data
    entry = AuditLog.objects.get(action="export")
    assert entry.target_model == "auth.group" and entry.after == {"format": "CSV", "rows": 1}


def test_imports_are_audited(root):
    from django.contrib.messages.storage.cookie import CookieStorage
    from import_export.results import Result, RowResult

    group = Group.objects.create(name="imported")
    result = Result()
    row = RowResult()
    row.import_type, row.object_id, row.instance = RowResult.IMPORT_TYPE_NEW, group.pk, group
    result.append_row_result(row)
    result.totals[RowResult.IMPORT_TYPE_NEW] = 1
    request = RequestFactory().post("/admin/auth/group/import/")
    request.user = root
    request._messages = CookieStorage(request)
    _import_export_admin().process_result(result, request)
    entry = AuditLog.objects.get(action="import")
    assert entry.after["new"] == [str(group.pk)] and entry.after["totals"]["new"] == 1


def test_inline_rows_are_part_of_the_snapshot(root):
    from django.contrib.admin import AdminSite, TabularInline

    from core.admin import AuditedModelAdmin
    from knowledge.models import Faq, FaqQuestion

    class QuestionInline(TabularInline):
        model = FaqQuestion

    class FaqAuditAdmin(AuditedModelAdmin):
        inlines = [QuestionInline]

    faq = Faq.objects.create(question="怎么退货？", answer="七天无理由")
    FaqQuestion.objects.create(faq=faq, text="如何退货")
    request = RequestFactory().post("/")
    request.user = root
    model_admin = FaqAuditAdmin(Faq, AdminSite(name="audit-inline-test"))
    before = model_admin.audit_snapshot(request, faq)
    FaqQuestion.objects.create(faq=faq, text="退货流程")
    old, new = audit.diff(before, model_admin.audit_snapshot(request, faq))
    assert [q["text"] for q in old["similar_questions"]] == ["如何退货"]
    assert [q["text"] for q in new["similar_questions"]] == ["如何退货", "退货流程"]
    assert set(old) == {"similar_questions"}
