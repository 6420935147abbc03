"""Admin: the read-only audit log, the audited user and group admins, and the ``AuditedModelAdmin`` mixin and
``audited_action`` decorator that every other app's admin uses so that its changes are audited.

Mix ``AuditedModelAdmin`` in first: ``class KeywordRuleAdmin(AuditedModelAdmin, ImportExportModelAdmin)``. It hooks
the points Django's admin always passes through, so subclasses may override ``save_model``/``delete_model``
freely (and call services instead of ``super()``):

* ``get_object`` (every change/delete/password view loads the object through it): snapshot before;
* ``_get_list_editable_queryset`` (list_editable saves): snapshot before;
* ``log_addition``/``log_change`` (called after the object and its inlines and m2m are saved): snapshot after,
  one audit row (``create`` with the values, ``change`` with the changed fields only);
* ``log_deletions`` (delete view and the delete_selected action, before deleting): one ``delete`` row each;
* ``process_result`` (django-import-export import) and ``get_export_data`` (export): one ``import``/``export`` row.

Custom admin views and actions must record themselves: ``audited_action`` for actions, ``core.audit.audit_record``
for anything else."""

from __future__ import annotations

import functools
import json

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.forms.models import _get_foreign_key
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from core import audit
from core.models import AuditLog

BULK_DETAIL_LIMIT = 200  # per-object before/after rows recorded for an action on at most this many objects


def _key(obj) -> tuple[str, str]:
    return obj._meta.label_lower, str(obj.pk)


def _stash(request) -> dict:
    if not hasattr(request, "_kefu_audit_before"):
        request._kefu_audit_before = {}
    return request._kefu_audit_before


class AuditedModelAdmin(admin.ModelAdmin):
    """Writes the audit log for every add, change and delete made through this ModelAdmin (see module doc)."""

    #: fields never recorded (noise such as counters)
    audit_exclude: tuple[str, ...] = ()
    #: extra fields treated as secrets (recorded as "<changed>" only); encrypted and *secret*/*token*/*_key*
    #: fields are secrets already
    audit_sensitive: tuple[str, ...] = ()
    #: record the rows of the inlines with the object (before/after as lists)
    audit_inlines: bool = True

    # --- snapshots -----------------------------------------------------------------------------------------
    def audit_snapshot(self, request, obj) -> dict:
        data = audit.snapshot(obj, exclude=self.audit_exclude, sensitive=self.audit_sensitive)
        if self.audit_inlines and obj.pk is not None:
            for inline in self.get_inline_instances(request, obj):
                try:
                    fk = _get_foreign_key(type(obj), inline.model, fk_name=inline.fk_name)
                except (ValueError, AttributeError):
                    continue  # generic or unusual inline: not recorded
                rows = inline.model._base_manager.filter(**{fk.name: obj.pk}).order_by("pk")[: audit.MAX_RELATED]
                data[fk.remote_field.get_accessor_name()] = [
                    audit.snapshot(row, exclude=(fk.name,), sensitive=self.audit_sensitive) for row in rows
                ]
        return data

    def _fresh_snapshot(self, request, obj) -> dict | None:
        if obj is None or obj.pk is None:
            return None
        fresh = type(obj)._base_manager.filter(pk=obj.pk).first()
        return None if fresh is None else self.audit_snapshot(request, fresh)

    # --- before -------------------------------------------------------------------------------------------
    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST":  # only a POST can change it
            _stash(request).setdefault(_key(obj), self.audit_snapshot(request, obj))
        return obj

    def _get_list_editable_queryset(self, request, prefix):
        queryset = super()._get_list_editable_queryset(request, prefix)
        stash = _stash(request)
        for obj in queryset:
            stash.setdefault(_key(obj), self.audit_snapshot(request, obj))
        return queryset

    # --- after --------------------------------------------------------------------------------------------
    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        after = self._fresh_snapshot(request, obj) or self.audit_snapshot(request, obj)
        audit.audit_record(action=audit.Action.CREATE, target=obj, after=after, request=request)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        before = _stash(request).pop(_key(obj), None)
        after = self._fresh_snapshot(request, obj) or self.audit_snapshot(request, obj)
        if before is None:  # a view that did not load the object through get_object: record what it is now
            audit.audit_record(action=audit.Action.CHANGE, target=obj, after=after, request=request)
        else:
            audit.audit_changes(action=audit.Action.CHANGE, target=obj, before=before, after=after, request=request)
        return entry

    def log_deletions(self, request, queryset):
        objects = list(queryset)
        for obj in objects:
            before = _stash(request).pop(_key(obj), None) or self.audit_snapshot(request, obj)
            audit.audit_record(action=audit.Action.DELETE, target=obj, before=before, request=request)
        return super().log_deletions(request, objects)

    # --- django-import-export (only called when the admin also mixes ImportExportModelAdmin in) --------------
    def process_result(self, result, request):
        rows: dict[str, list[str]] = {}
        for row in result:
            if row.import_type in ("new", "update", "delete"):
                rows.setdefault(row.import_type, []).append(str(row.object_id or getattr(row.instance, "pk", "")))
        audit.audit_record(
            action=audit.Action.IMPORT,
            target=self.model,
            after={"totals": dict(result.totals), **{k: v[:1000] for k, v in rows.items()}},
            request=request,
        )
        return super().process_result(result, request)

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        audit.audit_record(
            action=audit.Action.EXPORT,
            target=self.model,
            after={"format": type(file_format).__name__, "rows": queryset.count()},
            request=request,
        )
        return data


def audited_action(func=None, /, **action_kwargs):
    """Decorator for admin actions: one summary row (``action:<name>`` with the count and ids) plus, for up to
    BULK_DETAIL_LIMIT objects, one row per object the action changed or deleted (before/after). Takes the
    arguments of ``admin.action`` too: ``@audited_action(description=..., permissions=["change"])``."""

    def decorate(action):
        name = f"action:{action.__name__}"

        @functools.wraps(action)
        def wrapper(modeladmin, request, queryset):
            model = queryset.model
            ids = list(queryset.values_list("pk", flat=True)[:1000])
            detailed = len(ids) <= BULK_DETAIL_LIMIT
            snap = (
                modeladmin.audit_snapshot
                if isinstance(modeladmin, AuditedModelAdmin)
                else lambda _request, obj: audit.snapshot(obj)
            )
            before = {o.pk: (o, snap(request, o)) for o in model._base_manager.filter(pk__in=ids)} if detailed else {}
            result = action(modeladmin, request, queryset)
            audit.audit_record(
                action=name, target=model, after={"count": len(ids), "ids": [str(i) for i in ids]}, request=request
            )
            if detailed:
                now = {o.pk: o for o in model._base_manager.filter(pk__in=list(before))}
                for pk, (old, old_snapshot) in before.items():
                    if pk not in now:
                        audit.audit_record(action=name, target=old, before=old_snapshot, request=request)
                    else:
                        audit.audit_changes(
                            action=name,
                            target=now[pk],
                            before=old_snapshot,
                            after=snap(request, now[pk]),
                            request=request,
                        )
            return result

        return admin.action(**action_kwargs)(wrapper) if action_kwargs else wrapper

    return decorate(func) if func is not None else decorate


# --- the audit log ----------------------------------------------------------------------------------------
def _changes_table(before: dict, after: dict):
    def show(value):
        if value is None:
            return "—"
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)

    keys = sorted(set(before or {}) | set(after or {}))
    if not keys:
        return "—"
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
        ((k, show((before or {}).get(k)), show((after or {}).get(k))) for k in keys),
    )
    return format_html(
        '<table class="kefu-audit-changes"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        _("field"),
        _("before"),
        _("after"),
        rows,
    )


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included; visible to holders of ``core.view_auditlog`` (the auditor
    group) and superusers."""

    list_display = ("created_at", "actor_username", "action", "target_model", "target_pk", "target_repr", "ip")
    list_filter = ("action", "target_model", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=actor_username", "=target_pk", "=request_id", "action")
    date_hierarchy = "created_at"
    list_per_page = 100
    fields = (
        "created_at",
        "actor_username",
        "actor_id",
        "action",
        "target_model",
        "target_pk",
        "target_repr",
        "changes",
        "ip",
        "request_id",
    )
    readonly_fields = fields

    def get_actions(self, request):
        return {}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("changes"))
    def changes(self, obj):
        return _changes_table(obj.before, obj.after)


# --- users and groups: audited ------------------------------------------------------------------------------
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedModelAdmin, UserAdmin):
    audit_exclude = ("last_login",)
    audit_inlines = False


@admin.register(Group)
class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    audit_inlines = False


# --- sensitive words: lists, words, hits (a module of its own) ------------------------------------------------------
from core import admin_sensitive  # noqa: E402,F401
