"""Shared fixtures: the real PostgreSQL (pytest-django), the real Redis (a test database index), a real
Celery worker in a thread (celery.contrib.testing), and a real daphne server for browser tests."""

from __future__ import annotations

import contextlib
import time

import pytest
from django.conf import settings

from core import redis as kredis


@pytest.fixture(autouse=True)
def _routing_rules_forgotten():
    """Routing rules are cached per process for a few seconds; a test's rolled-back rules must not leak."""
    from routing.services.rules import rules_forget

    rules_forget()
    yield
    rules_forget()


@pytest.fixture
def redis_clean():
    """An empty Redis test database (queues, realtime backlog, version keys) and fresh in-process caches."""
    from knowledge import rules

    assert not settings.REDIS_URL.rstrip("/").endswith(("6379", "/0")), "tests must use their own Redis database"
    kredis.client().flushdb()
    rules.cache.reset()
    yield kredis.client()
    rules.cache.reset()


@contextlib.contextmanager
def running_worker(queues=("inbound", "outbound", "default")):
    """A real Celery worker consuming the real Redis broker, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app, pool="threads", concurrency=2, perform_ping_check=False, queues=list(queues), shutdown_timeout=20
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(redis_clean, transactional_db):
    with running_worker() as worker:
        yield worker


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")


@pytest.fixture
def web_channel(db):
    from bots.models import Channel

    return Channel.objects.create(kind=Channel.Kind.WEB, slug="web", name="Web")


@pytest.fixture
def greeting_rule(db):
    from knowledge.models import KeywordRule
    from knowledge.services import keyword_rule_save

    return keyword_rule_save(rule=KeywordRule(name="hello", keyword="你好", reply="您好，{nickname}！有什么可以帮您？"))
