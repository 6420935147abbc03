#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1; start the local ones when installed but stopped.
# Exit 0 when both are up, 1 otherwise (callers decide whether to fall back to embedded mode).
set -u
PGHOST_=${KEFU_PGHOST:-127.0.0.1}
PGPORT_=${KEFU_PGPORT:-5432}
REDIS_PORT_=${KEFU_REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PGHOST_" -p "$PGPORT_" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT_" ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "[services] starting PostgreSQL"
    for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true; done
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "[services] starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT_" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 ||
      redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT_" --save "" --appendonly no >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do redis_up && break; sleep 0.3; done
  fi
fi
if [ "${KEFU_NEED_RABBITMQ:-0}" = 1 ] && ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "[services] starting RabbitMQ (the amqp:// broker test uses it)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
  else
    echo "[services] RabbitMQ is not installed: the amqp:// broker test will fail"
  fi
fi
ok=0
if pg_up; then
  echo "[services] PostgreSQL is up on $PGHOST_:$PGPORT_"
  psql -h "$PGHOST_" -p "$PGPORT_" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='kefu'" 2>/dev/null | grep -q 1 ||
    psql -h "$PGHOST_" -p "$PGPORT_" -U postgres -qc "CREATE DATABASE kefu" >/dev/null 2>&1 || true
else
  echo "[services] PostgreSQL is NOT reachable on $PGHOST_:$PGPORT_"; ok=1
fi
if redis_up; then echo "[services] Redis is up on 127.0.0.1:$REDIS_PORT_"; else echo "[services] Redis is NOT reachable"; ok=1; fi
exit $ok
