"""Re-encrypt every encrypted field under the primary key of KEFU_FIELD_KEYS, in batches, resumably.

Rows already under the primary key are skipped, so a run that was interrupted simply continues where it
stopped when started again. Raw SQL keeps ``updated_at`` and other auto fields untouched.
"""

import getpass

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from core import crypto
from core.audit import audit_record
from core.fields import EncryptedTextField


def encrypted_fields():
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if fields and not model._meta.proxy:
            yield model, fields


class Command(BaseCommand):
    help = "Re-encrypt encrypted fields under the primary key (first entry of KEFU_FIELD_KEYS). Resumable."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="count what would be re-encrypted")

    def handle(self, *args, batch_size, dry_run, **options):
        primary = crypto.keyring().primary
        prefix = f"{crypto.PREFIX}${primary}$".replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        total = 0
        qn = connection.ops.quote_name
        for model, fields in encrypted_fields():
            table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
            stale = " OR ".join(f"({qn(f.column)} <> '' AND {qn(f.column)} NOT LIKE %s)" for f in fields)
            params = [prefix + "%"] * len(fields)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE {stale}", params)  # noqa: S608
                (todo,) = cursor.fetchone()
            label = model._meta.label
            if not todo:
                self.stdout.write(f"{label}: nothing to rotate")
                continue
            self.stdout.write(f"{label}: {todo} row(s) to re-encrypt under key {primary!r}")
            if dry_run:
                total += todo
                continue
            done, last_pk = 0, None
            columns = ", ".join(qn(f.column) for f in fields)
            while True:
                after = f"AND {pk} > %s" if last_pk is not None else ""
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT {pk}, {columns} FROM {table} WHERE ({stale}) {after} "  # noqa: S608
                        f"ORDER BY {pk} LIMIT %s FOR UPDATE",
                        [*params, *([last_pk] if last_pk is not None else []), batch_size],
                    )
                    rows = cursor.fetchall()
                    if not rows:
                        break
                    assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
                    cursor.executemany(
                        f"UPDATE {table} SET {assignments} WHERE {pk} = %s",  # noqa: S608
                        [[crypto.reencrypt(v) if v else v for v in row[1:]] + [row[0]] for row in rows],
                    )
                done += len(rows)
                last_pk = rows[-1][0]
                self.stdout.write(f"  {label}: {done}/{todo}")
            total += done
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        if not dry_run:
            # key changes are audited like every other change of keys (the key material never is)
            audit_record(
                actor=f"cli:rotate_keys:{getpass.getuser()}",
                action="keys.rotate",
                target="core.crypto",
                after={"primary_key_id": primary, "rows_reencrypted": total},
            )
        self.stdout.write(self.style.SUCCESS(f"rotate_keys: {verb} {total} row(s)"))
