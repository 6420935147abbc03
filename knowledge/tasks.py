"""Celery tasks of the knowledge app (all routed to the slow ``ml`` queue by ``knowledge.tasks.*``)."""

from celery import shared_task

from knowledge import services


@shared_task(acks_late=True)
def intent_model_train(model_id: int) -> str:
    """Train one queued intent model version; idempotent (a finished version is left as is)."""
    model = services.intent_model_train_run(model_id=model_id)
    return model.status


@shared_task(acks_late=True)
def mining_run(run_id: int) -> str:
    """Execute one queued mining run (association rules or unanswered-question groups); idempotent."""
    from knowledge.services import mining

    return mining.mining_run_execute(run_id=run_id).status


@shared_task(acks_late=True)
def mining_schedule(kind: str = "rules") -> int | None:
    """Beat: start a run of ``kind`` ("rules" weekly, "clusters" nightly) with the last run's settings."""
    from knowledge.services import mining

    run = mining.mining_run_schedule(kind=kind)
    return run.id if run else None
