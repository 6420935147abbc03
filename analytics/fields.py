"""A list of floats: ``double precision[]`` on PostgreSQL (``unnest`` + ``percentile_cont`` give exact percentiles
over any range of days), JSON text elsewhere (embedded SQLite mode only needs the tables to exist)."""

from __future__ import annotations

import json

from django.db import models


class FloatListField(models.Field):
    description = "list of floats"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def db_type(self, connection):
        return "double precision[]" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return []
        if isinstance(value, str):
            return json.loads(value or "[]")
        return list(value)

    def to_python(self, value):
        if isinstance(value, str):
            return json.loads(value or "[]")
        return [] if value is None else list(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        values = [float(v) for v in (value or [])]
        return values if connection.vendor == "postgresql" else json.dumps(values)
