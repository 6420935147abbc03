"""Celery tasks of core: take no arguments, call one service."""

from celery import shared_task

from core import dbmaint


@shared_task
def db_maintenance() -> list[str]:
    return dbmaint.maintenance_run()
