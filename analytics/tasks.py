"""Celery tasks of the analytics app (queue ``default``): the rollups behind the dashboard."""

from celery import shared_task


@shared_task(acks_late=True)
def rollup_recent(days: int = 2) -> int:
    """Beat: rebuild today and the days before it (2 every 5 minutes; 9 nightly)."""
    from analytics import services

    return len(services.rollup_recent(days=days))


@shared_task(acks_late=True)
def rollup_nightly() -> int:
    from analytics import services

    return len(services.rollup_recent(days=services.refresh_days()))
