"""The real thing against the plans' real limits: PostgreSQL allowing the app's role 20 connections and Redis 20
clients, as Heroku's essential and mini plans do. Three serve dynos of two workers each, the learner and a
standby, with labels and predictions flowing; then every dyno restarted as a deploy with preboot does, old and
new overlapping. No 5xx, no label lost, and the servers' own counts never over the limits."""

from __future__ import annotations

import time

import pytest
from fleet import Formation, Plans, Traffic, Watcher, learned_rows
from server import request


@pytest.fixture
def plans(tmp_path):
    plans = Plans(tmp_path)
    yield plans
    plans.close()


def test_three_dynos_a_learner_and_a_standby_restart_within_twenty_connections(plans, tmp_path):
    with Watcher(plans) as watcher:
        formation = Formation(plans, tmp_path / "store", web_dynos=3, web_concurrency=2, workers=2)
        try:
            with Traffic(formation) as traffic:
                time.sleep(8)
                formation.restart_all()
                time.sleep(8)
            deadline = time.monotonic() + 180
            while not set(traffic.learned) <= set(rows := learned_rows(plans)):
                assert time.monotonic() < deadline, f"{len(set(traffic.learned) - set(rows))} labels never learned"
                time.sleep(0.5)
            health = request(f"{formation.webs[0].url}/healthz")[1]
        finally:
            formation.close()
    print(f"\npeaks: PostgreSQL {watcher.peak_postgres} {watcher.peak_by_process}, Redis {watcher.peak_redis}; "
          f"answers {traffic.statuses}, labels {len(traffic.learned)}")  # fmt: skip
    assert traffic.errors == []
    assert traffic.statuses.get(200, 0) > 50 and set(traffic.statuses) <= {200, 202}, traffic.statuses
    assert {number: rows[number] for number in traffic.learned} == traffic.learned  # each with its own label
    assert health["database"] == {"state": "ok"}
    assert plans.refused() == {"postgres": 0, "redis": 0}
    assert 0 < watcher.peak_postgres <= 20, watcher.peak_by_process
    assert watcher.peak_redis <= 20
    # A serve worker holds one connection, a learner two (its primary and the recorder's), whatever the load.
    assert max(n for name, n in watcher.peak_by_process.items() if name.startswith("digits-web-serve")) == 1
    assert max(n for name, n in watcher.peak_by_process.items() if name.startswith("digits-learner")) <= 2
