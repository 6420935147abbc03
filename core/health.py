"""Health checks for /healthz: each dependency reports ok/error and a latency."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from core import dbmaint


def _timed(check: Callable[[], str | None]) -> dict:
    started = time.perf_counter()
    try:
        note = check()
        result = {"status": "ok"}
        if note:
            result["note"] = note
    except Exception as exc:  # a health page reports failures, it never raises them
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    if dbmaint.autovacuum_on() is False:
        return f"{connection.vendor}; autovacuum is off: beat's db-maintenance task analyses the hot tables"
    return connection.vendor


def check_redis() -> str | None:
    if settings.KEFU_EMBEDDED:
        return "embedded mode: no Redis in use"
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return None


def check_celery() -> str | None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "embedded mode: tasks run inline"
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
        replies = app.control.ping(timeout=1.0, limit=1, connection=conn)
    if not replies:
        raise RuntimeError("no Celery worker answered")
    return f"{len(replies)} worker(s)"


def check_channel_layer() -> str | None:
    layer = get_channel_layer()

    async def round_trip() -> None:
        import asyncio

        name = await layer.new_channel()
        await layer.send(name, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(name), timeout=1.0)
        if message.get("type") != "health.ping":
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(round_trip)()
    return type(layer).__name__


CHECKS = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "channel_layer": check_channel_layer,
}


def health_report() -> dict:
    checks = {name: _timed(check) for name, check in CHECKS.items()}
    ok = all(c["status"] == "ok" for c in checks.values())
    return {"status": "ok" if ok else "error", "embedded": settings.KEFU_EMBEDDED, "checks": checks}
