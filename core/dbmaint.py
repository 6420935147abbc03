"""Planner statistics of the message path's tables where PostgreSQL's autovacuum is off.

Every message adds rows to a few tables and rewrites others (conversations, outbox rows). PostgreSQL keeps its
statistics and cleans dead row versions with autovacuum; where a server runs with ``autovacuum = off`` (this
project's CI database does) the statistics are never refreshed and, measured under the load test, the planner
went from index lookups to about one sequential scan of the outbox per message, PostgreSQL's CPU per message
growing by half within a few thousand messages. ``maintenance_run`` (Celery beat ``db-maintenance``) then runs
``VACUUM (ANALYZE)`` on those tables; with autovacuum on it does nothing. ``/healthz`` names the setting.
"""

from __future__ import annotations

import logging
import time

from django.db import connection

logger = logging.getLogger(__name__)


def hot_tables() -> list[str]:
    """The tables the message path writes on every message."""
    from bots.models import Conversation, Customer, Message, Outbox
    from routing.models import Ticket

    return [model._meta.db_table for model in (Message, Outbox, Conversation, Customer, Ticket)]


def autovacuum_on() -> bool | None:
    """PostgreSQL's ``autovacuum`` setting; None on another database."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


def vacuum_analyze(tables: list[str]) -> float:
    """``VACUUM (ANALYZE)`` each table (outside a transaction: VACUUM cannot run in one); seconds taken."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        for name in tables:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(name)}")
    return time.monotonic() - started


def maintenance_run() -> list[str]:
    """Refresh the hot tables' statistics when autovacuum is off; the tables done (none otherwise)."""
    if autovacuum_on() is not False:
        return []
    tables = hot_tables()
    seconds = vacuum_analyze(tables)
    logger.info("autovacuum is off: hot tables vacuumed and analysed", extra={"tables": tables, "seconds": seconds})
    return tables
