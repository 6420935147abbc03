"""The audit log is append-only in the database itself: triggers refuse UPDATE, DELETE and TRUNCATE of
core_auditlog, whatever the client (ORM, raw SQL, psql with the application's role).

TRUNCATE is let through only in a session that set ``kefu.audit_allow_truncate = on``: the test settings set it on
their connections so pytest-django can flush the test database between transactional tests. Anyone who can SET it
can also drop the trigger (the table owner); a deployment that wants the log safe from the application's own role
gives that role INSERT and SELECT only on core_auditlog (README "Security and compliance")."""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION kefu_auditlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('kefu.audit_allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'core_auditlog is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END;
$$;
DROP TRIGGER IF EXISTS core_auditlog_append_only_rows ON core_auditlog;
CREATE TRIGGER core_auditlog_append_only_rows BEFORE UPDATE OR DELETE ON core_auditlog
    FOR EACH ROW EXECUTE FUNCTION kefu_auditlog_append_only();
DROP TRIGGER IF EXISTS core_auditlog_append_only_truncate ON core_auditlog;
CREATE TRIGGER core_auditlog_append_only_truncate BEFORE TRUNCATE ON core_auditlog
    FOR EACH STATEMENT EXECUTE FUNCTION kefu_auditlog_append_only();
"""

SQLITE_FORWARD = [
    "CREATE TRIGGER IF NOT EXISTS core_auditlog_no_update BEFORE UPDATE ON core_auditlog "
    "BEGIN SELECT RAISE(ABORT, 'core_auditlog is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS core_auditlog_no_delete BEFORE DELETE ON core_auditlog "
    "BEGIN SELECT RAISE(ABORT, 'core_auditlog is append-only: DELETE refused'); END",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_FORWARD, params=None)  # no placeholders: "%" is plpgsql's
    elif vendor == "sqlite":  # embedded mode
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_auditlog")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
