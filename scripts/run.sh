#!/usr/bin/env bash
# `make run`: services, migrations, demo data, then daphne + Celery worker(s) + beat in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p .run var
$PY scripts/ensure_env.py
export DJANGO_SETTINGS_MODULE=config.settings.local
PROCFILE=Procfile
if ! bash scripts/services.sh; then
  export KEFU_EMBEDDED=1
  PROCFILE=Procfile.embedded
  cat <<'BANNER'

############################################################################################
#  WARNING: PostgreSQL or Redis is not reachable and could not be started.                  #
#  Kefu runs in EMBEDDED mode: SQLite (var/kefu.sqlite3), in-memory channel layer,          #
#  Celery tasks run inline (eager), local-memory cache. Fine for a look, not for real use. #
############################################################################################

BANNER
fi
$PY manage.py migrate --noinput
$PY manage.py seed_demo
$PY manage.py collectstatic --noinput -v 0
PORT=${PORT:-8000}
PASSWORD=$($PY -c "import django,os;os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings.local');django.setup();from django.conf import settings;print(settings.KEFU_DEMO_PASSWORD)")
cat <<EOF2

  Kefu is starting on http://127.0.0.1:${PORT}/
    Chat simulator  http://127.0.0.1:${PORT}/simulator/
    Admin           http://127.0.0.1:${PORT}/admin/
    API docs        http://127.0.0.1:${PORT}/api/docs/   (schema: /api/schema/)
    Health          http://127.0.0.1:${PORT}/healthz
  Demo logins (password: ${PASSWORD}): admin, operator, supervisor, agent1, agent2
  Ctrl-C stops everything.

EOF2
export PORT
exec .venv/bin/honcho -f "$PROCFILE" start
