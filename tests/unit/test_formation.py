"""The formation's connections, counted as every process counts them at boot, against the plans' limits."""

from __future__ import annotations

import json

import pytest

from livedigits.config import ROOT, Config
from livedigits.formation import Formation, postgres_refusal, redis_refusal

PG = "postgresql://app@db/app"


def fleet(web_dynos: int, workers: int, **fields) -> Config:
    fields = {"rate_limit_storage": "redis://kv:6379", **fields}
    return Config(database_url=PG, role="serve", web_dynos=web_dynos, web_concurrency=2, worker_dynos=workers,
                  **fields)  # fmt: skip


def test_app_jsons_own_formation_fits_its_plans_with_a_restarts_overlap():
    manifest = json.loads((ROOT / "app.json").read_text())
    env = {name: spec["value"] for name, spec in manifest["env"].items() if "value" in spec}
    config = fleet(int(env["WEB_DYNOS"]), int(env["WORKER_DYNOS"]))
    assert manifest["formation"]["web"]["quantity"] == config.web_dynos
    assert manifest["formation"]["worker"]["quantity"] == config.worker_dynos
    assert int(env["WEB_CONCURRENCY"]) == config.web_concurrency
    assert (Formation.of(config).postgres(), Formation.of(config).redis()) == (2 * (2 + 2), 2 * 2)
    assert postgres_refusal(config) is None and redis_refusal(config) is None


@pytest.mark.parametrize(
    ("web_dynos", "workers", "fits"),
    [(4, 1, True), (5, 1, False), (3, 2, True), (4, 2, False), (6, 2, False), (1, 2, True)],
)
def test_the_readmes_table_for_essential_and_mini(web_dynos, workers, fits):
    assert (postgres_refusal(fleet(web_dynos, workers)) is None) == fits


def test_an_upgraded_plan_fits_ten_dynos_and_redis_bounds_it():
    upgraded = {"pg_connection_limit": 120, "redis_connection_limit": 40}
    assert postgres_refusal(fleet(10, 2, **upgraded)) is None and redis_refusal(fleet(10, 2, **upgraded)) is None
    assert postgres_refusal(fleet(11, 2, **upgraded)) is None
    assert "needs 44 Redis connections, REDIS_CONNECTION_LIMIT is 40" in redis_refusal(fleet(11, 2, **upgraded))


def test_the_refusal_names_the_sum_and_what_to_do():
    said = postgres_refusal(fleet(6, 2))
    assert "6 web dyno(s) x 2 process(es) and 2 worker(s), x2 while restarting needs 32 PostgreSQL" in said
    assert "PG_CONNECTION_LIMIT is 20" in said and "README, Scaling" in said


def test_an_all_web_counts_one_learner_process_and_sqlite_counts_nothing():
    config = Config(database_url=PG, role="all", web_dynos=2, web_concurrency=4, worker_dynos=0)
    assert Formation.of(config).postgres() == 2 * 2 * 2  # one process of 2 connections per dyno, twice
    assert postgres_refusal(Config(database_url="sqlite:///tmp/x.sqlite3", web_dynos=99)) is None
    assert redis_refusal(fleet(99, 2, rate_limit_storage="memory://")) is None
