"""The web process's PostgreSQL pool opens all its connections at start unless KEFU_DB_POOL_MIN says otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pool(**env) -> dict | None:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {}).get('pool')))"
    )
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "KEFU_EMBEDDED": "0", **env}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_pool_is_opened_whole_by_default_and_can_start_smaller():
    assert _pool(KEFU_DB_POOL_MAX="12") == {"min_size": 12, "max_size": 12, "timeout": 10}
    assert _pool(KEFU_DB_POOL_MAX="12", KEFU_DB_POOL_MIN="3")["min_size"] == 3
    assert _pool(KEFU_DB_POOL_MAX="4", KEFU_DB_POOL_MIN="9")["min_size"] == 4
    assert _pool(KEFU_DB_POOL_MAX="0") is None
