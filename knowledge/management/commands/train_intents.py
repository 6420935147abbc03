"""Train a new intent model version now, in this process: ``python manage.py train_intents [--activate]``.

The admin's "Train a new version" queues the same work on the ``ml`` Celery queue; this command is for
scripts and deployments. ``--import PATH`` first adds the examples of a JSONL / CSV / Rasa nlu.yml file.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from knowledge import services


class Command(BaseCommand):
    help = "Train (and optionally activate) a new intent model version synchronously."

    def add_arguments(self, parser):
        parser.add_argument("--import", dest="import_path", help="JSONL, CSV or Rasa nlu.yml to import first")
        parser.add_argument("--activate", action="store_true", help="activate the new version when it is ready")

    def handle(self, *args, **options):
        try:
            if options["import_path"]:
                path = Path(options["import_path"])
                if not path.is_file():
                    raise CommandError(f"{path}: no such file")
                report = services.intent_examples_import(content=path.read_bytes(), filename=path.name)
                self.stdout.write(f"imported: {json.dumps(report.as_dict())}")
            model = services.intent_model_train_start(queue=False)
            model = services.intent_model_train_run(model_id=model.id)
            if model.status != "ready":
                raise CommandError(f"v{model.version} failed: {model.error}")
            if options["activate"] and not model.active:
                model = services.intent_model_activate(model=model)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        metrics = model.metrics
        self.stdout.write(
            f"v{model.version} ready{' and active' if model.active else ''}: accuracy {metrics.get('accuracy', 0):.3f}, "
            f"macro-F1 {metrics.get('macro_f1', 0):.3f} ({metrics.get('evaluation')}), "
            f"{model.n_examples} examples, {len(model.labels)} intents, {metrics.get('train_seconds')} s"
        )
