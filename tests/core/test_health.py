import pytest


@pytest.mark.django_db(transaction=True)
def test_healthz_ok_when_everything_runs(client, celery_worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "celery", "channel_layer", "embedding"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], float)


@pytest.mark.django_db
def test_healthz_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # a closed port
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_healthz_503_when_no_worker_answers(client, redis_clean):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["celery"]["status"] == "error"
