"""core.dbmaint: where PostgreSQL's autovacuum is off (this project's CI server), the db-maintenance task keeps the
message path's planner statistics fresh; where it is on, the task leaves PostgreSQL alone. Real PostgreSQL."""

import pytest
from django.db import connection

from bots.models import Conversation, Customer, Message
from core import dbmaint
from core.health import check_database
from core.tasks import db_maintenance


def _estimate(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_task_refreshes_the_hot_tables_only_when_autovacuum_is_off(web_channel):
    customer = Customer.objects.create(channel=web_channel, external_id="maint")
    conversation = Conversation.objects.create(customer=customer, channel=web_channel)
    for i in range(23):
        Message.objects.create(conversation=conversation, channel=web_channel, direction="in", external_id=f"m{i}")
    before = _estimate(Message._meta.db_table)
    done = db_maintenance.apply().get()
    if dbmaint.autovacuum_on():
        assert done == [] and _estimate(Message._meta.db_table) == before
    else:
        assert done == dbmaint.hot_tables() and Message._meta.db_table in done
        assert _estimate(Message._meta.db_table) == Message.objects.count() == 23
        assert "autovacuum is off" in check_database()


def test_the_beat_runs_it():
    from config.settings import base  # the test settings empty the schedule

    entry = base.CELERY_BEAT_SCHEDULE["db-maintenance"]
    assert entry["task"] == db_maintenance.name == "core.tasks.db_maintenance"
    assert entry["schedule"] <= 900
    assert base.CELERY_TASK_ROUTES[entry["task"]] == {"queue": "ml"}  # the slow worker, not the message path's
