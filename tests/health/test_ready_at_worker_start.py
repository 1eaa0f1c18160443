"""Each worker of the production server starts its readiness checks as it starts.

gunicorn runs ``boot/gunicorn.conf.py`` in a subprocess, on S3 (moto's server),
where a process's first storage check also builds botocore's check client.
"""

import json

from tests.api.production import ProductionServer, production_env


def test_production_workers_start_their_readiness_checks_before_serving(tmp_path, s3_settings):
    env = production_env(
        database_url=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        storage_root=tmp_path / "unused",
        **s3_settings,
    )
    server = ProductionServer(env=env, log_path=tmp_path / "gunicorn.log")
    try:
        status, body = server.request("GET", "/ready")
    finally:
        server.stop()

    assert status == 200, body
    assert body["checks"]["storage"]["ok"] is True
    events = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    started = [event for event in events if event["event"] == "ready.checks_started"]
    assert started, server.log()
    assert all(event["checks"] == ["database", "storage"] for event in started)
