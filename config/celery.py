"""The Celery application. Queues: inbound (decisions), outbound (sending), default, ml (slow work)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kefu")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("inbound"), Queue("outbound"), Queue("default"), Queue("ml")]
app.autodiscover_tasks()
