"""Heroku for real: what the buildpack detects, app.json against Heroku's own schema, the config its add-ons set,
the learner's lease, and a Heroku-like run: each dyno in its own copy of the project, seeing only the variables
Heroku and its add-ons set (PostgreSQL, Key-Value Store over real TLS, Bucketeer on moto), stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, create_app
from drawings import stroke_canvas, to_data_url
from server import Server, request

from bench.slug import copy_app
from livedigits.config import Config, cpu_share
from livedigits.state.database import Database
from livedigits.state.lease import Lease

HEROKU_SCHEMA = ROOT / "tests" / "node_modules" / "@heroku" / "mcp-server" / "dist" / "utils" / "app-json.schema.json"
# What makes Heroku pick another buildpack before Python's (its detection order: Ruby, Node.js, Clojure, Python).
OTHER_BUILDPACKS = ["Gemfile", "package.json", "project.clj", "composer.json", "go.mod", "pom.xml", "build.gradle"]
DRAWINGS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
]
HOLD_LEASE = """
import sys, time
from livedigits.state.database import Database
from livedigits.state.lease import Lease
lease = Lease(Database(sys.argv[1], name="learner"))
assert lease.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_root_builds_with_the_python_buildpack():
    assert [name for name in OTHER_BUILDPACKS if (ROOT / name).exists()] == []
    assert (ROOT / "requirements.txt").exists() and (ROOT / "tests" / "package.json").exists()
    assert (ROOT / "runtime.txt").read_text().strip() == f"python-{(ROOT / '.python-version').read_text().strip()}"
    assert os.access(ROOT / "bin" / "post_compile", os.X_OK)


def test_app_json_is_valid_against_herokus_schema():
    if not HEROKU_SCHEMA.exists():
        pytest.fail(f"{HEROKU_SCHEMA} is missing: run `npm ci` in tests/ (scripts/test.sh does)")
    schema = json.loads(HEROKU_SCHEMA.read_text())
    manifest = json.loads((ROOT / "app.json").read_text())
    jsonschema.validate(manifest, schema, format_checker=jsonschema.FormatChecker())
    with pytest.raises(jsonschema.ValidationError):  # the schema does refuse: a size Heroku does not sell
        jsonschema.validate({**manifest, "formation": {"web": {"quantity": 1, "size": "huge"}}}, schema)
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    assert manifest["formation"] == {
        "web": {"quantity": 1, "size": "standard-1x"},  # 512 MB: the serve role, no TensorFlow
        "worker": {"quantity": 1, "size": "standard-2x"},  # 1 GB: the learner
    }
    plans = {addon["plan"].split(":")[0] for addon in manifest["addons"]}
    assert {"heroku-postgresql", "heroku-redis", "bucketeer"} <= plans
    assert manifest["env"]["ADMIN_TOKEN"]["generator"] == "secret"
    assert manifest["env"]["ROLE"]["value"] == "serve"
    assert set(Path(ROOT / "Procfile").read_text().split()) >= {"web:", "worker:"}


def test_config_reads_what_herokus_add_ons_set(monkeypatch):
    for name in ("STORAGE_URL", "DATABASE_URL", "REDIS_URL", "RATE_LIMIT_STORAGE", "CPU_THREADS", "EPHEMERAL_DISK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DYNO", "web.1")
    bucketeer = {"BUCKETEER_BUCKET_NAME": "bucketeer-1234", "BUCKETEER_AWS_ACCESS_KEY_ID": "AKIA1",
                 "BUCKETEER_AWS_SECRET_ACCESS_KEY": "s3cr3t", "BUCKETEER_AWS_REGION": "eu-west-1"}  # fmt: skip
    with pytest.raises(ValueError, match=r"bucket.*Bucketeer.*EPHEMERAL_DISK=1"):
        Config.from_env()  # on a dyno with no bucket: refuse, rather than write to a disk wiped daily
    for name, value in bucketeer.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=r"PostgreSQL.*heroku-postgresql"):
        Config.from_env()
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/d")
    monkeypatch.setenv("REDIS_URL", "rediss://:p@redis.example:6380")
    config = Config.from_env()
    assert config.storage_url == "s3://bucketeer-1234"
    assert (config.s3_credentials.access_key_id, config.s3_credentials.region) == ("AKIA1", "eu-west-1")
    assert "s3cr3t" not in repr(config)
    assert config.database.startswith("postgresql://u:p@db.example")
    assert config.rate_limit_storage.endswith("ssl_cert_reqs=none")
    assert config.trusted_proxies == 1 and config.cpu_threads <= 2
    monkeypatch.setenv("STORAGE_URL", "s3://mine/digits")  # STORAGE_URL wins, with boto3's own credentials
    assert (Config.from_env().storage_url, Config.from_env().s3_credentials) == ("s3://mine/digits", None)
    monkeypatch.setenv("STORAGE_URL", str(ROOT / "tmp" / "demo"))
    monkeypatch.setenv("EPHEMERAL_DISK", "1")  # a demo may, knowingly
    assert Config.from_env().storage_url.endswith("demo")


def test_threads_are_the_dynos_share():
    assert cpu_share(False, 8, None) == 8  # off Heroku: every CPU
    assert cpu_share(True, 8, 512 * 2**20) == 2  # Standard-1X: 8 CPUs shown, shared
    assert cpu_share(True, 8, 1024 * 2**20) == 2  # Standard-2X
    assert cpu_share(True, 2, 2560 * 2**20) == 2  # Performance-M: 2 CPUs of its own
    assert cpu_share(True, 8, 14 * 2**30) == 8  # Performance-L


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_one_lease_holder_and_a_dead_holders_lease_is_free_at_once(backend, tmp_path):
    url = Config(storage_url=str(tmp_path / "store")).database
    first, second = Lease(Database(url, name="learner")), Lease(Database(url, name="learner"))
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire() and not second.held
    first.release()
    assert second.try_acquire()
    second.release()
    # A process holding it is killed: the lease is free by the next ask (the kernel ends the connection or lock).
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not first.try_acquire()
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 5
        while not first.try_acquire():
            assert time.monotonic() < deadline, "a killed holder's lease stayed taken"
            time.sleep(0.05)
    finally:
        holder.kill()
    if backend == "postgres":  # its connection dies (a database restart, a network cut): the holder knows
        import psycopg

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE "
                          "'digits-learner-%' AND pid <> pg_backend_pid()")  # fmt: skip
        assert not first.still_held() and not first.held
        assert second.try_acquire()
    first.release()
    second.release()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_an_all_web_hands_the_lease_to_a_worker(backend, tmp_path):
    """ROLE unset with a worker dyno: the web learns only until the worker says it waits, then follows it."""
    store = str(tmp_path / "store")
    app = create_app(Config(storage_url=store, sync_interval=0.1))
    client = app.test_client()
    assert client.post("/api/train", json={"image": DRAWINGS[0][0], "label": 1}).get_json()["model_version"] == 1
    worker = Server({"STORAGE_URL": store, "LEARN_INTERVAL": "0.05"}, kind="worker")
    try:
        wait_for(lambda: "learner at version 1" in worker.output(), 120, "the worker to take the lease over")
        assert not app.extensions["learner"].lease.held
        assert list((tmp_path / "store" / "checkpoints").glob("*1.zip"))  # the web's hand-over checkpoint
        body = client.post("/api/train", json={"image": DRAWINGS[1][0], "label": 7}).get_json()
        assert body["status"] == "learned" and body["model_version"] == 2  # learned by the worker, served here
        assert app.extensions["learner"].learner.version == 1  # the web applied nothing more
    finally:
        worker.kill(signal.SIGTERM)


def test_a_waiting_standby_gets_a_standby_checkpoint_and_starts_from_it(tmp_path, monkeypatch, caplog):
    """While a standby waits, the leader overwrites one checkpoint every keep_every entries, so that a crash costs
    the standby little replay; the one who takes over starts from it and lands on the leader's weights."""
    store = tmp_path / "store"
    app = create_app(Config(storage_url=str(store), sync_interval=0, checkpoint_every=1000, keep_every=2))
    app.extensions["learner"].learner.standby_waits = lambda: True
    client = app.test_client()
    for image, label in DRAWINGS + DRAWINGS[:2]:  # entries 1..5: standby checkpoints at 2, then 4 over it
        assert client.post("/api/train", json={"image": image, "label": label}).status_code == 200
    expected = client.post("/api/predict", json={"image": DRAWINGS[1][0]}).get_json()
    app.extensions["learner"].flush_checkpoints()
    assert [p.name for p in (store / "standby").iterdir()] == ["checkpoint.zip"]
    assert not (store / "checkpoints").exists()  # the bucket does not grow: one object, overwritten
    app.extensions["learner"]._stop_thread()  # a crash: no hand-over checkpoint, and the lease is free
    app.extensions["learner"].lease.release()
    with caplog.at_level("INFO", logger="livedigits.learning"):
        taken = create_app(Config(storage_url=str(store), sync_interval=0, checkpoint_every=1000))
    assert "restored checkpoint 4" in caplog.text  # then replayed entry 5 alone
    assert taken.test_client().post("/api/predict", json={"image": DRAWINGS[1][0]}).get_json() == expected


def test_an_all_web_hands_over_on_sigterm(tmp_path):
    """The one-dyno topology's restart: gunicorn's worker_exit writes a checkpoint at the web learner's version."""
    store = tmp_path / "store"
    web = Server({"STORAGE_URL": str(store), "RATE_LIMITS": "off"})
    web.wait_healthy()
    for image, label in DRAWINGS:
        assert request(f"{web.url}/api/train", {"image": image, "label": label})[1]["model_version"] >= 1
    assert stop_with_sigterm(web) < 25
    assert [p.name for p in (store / "checkpoints").iterdir()] == ["0000000003.zip"]


# --- a Heroku-like run ---------------------------------------------------------------------------------------


def dyno_folder(parent: Path, name: str) -> Path:
    """A copy of the project as a dyno has it (the slug's app: what git pushes, less .slugignore's): its disk,
    shared with no one."""
    folder = parent / name
    copy_app(folder)
    return folder


def stats(web: Server) -> dict:
    return request(f"{web.url}/api/stats")[1]


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def learner_seen(web: Server) -> bool:
    return request(f"{web.url}/healthz")[1]["learner_seen_seconds_ago"] is not None


def wait_for(condition, timeout: float, what: str) -> float:
    """Seconds until `condition()` holds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def stop_with_sigterm(process: Server) -> float:
    """SIGTERM to every process of the dyno, as Heroku does; seconds until they all exited."""
    started = time.monotonic()
    os.killpg(process.process.pid, signal.SIGTERM)
    process.process.wait(timeout=30)
    return time.monotonic() - started


@pytest.fixture
def heroku(tmp_path, moto, postgres):
    """The config vars of an app with heroku-postgresql, heroku-redis and Bucketeer attached (and ROLE=serve, as
    app.json sets it), plus AWS_ENDPOINT_URL_S3: boto3's own setting, to reach moto instead of AWS."""
    from redisserver import RedisServer
    from s3server import CREDENTIALS

    redis = RedisServer(tmp_path / "redis", tls=True)
    database = postgres.create_database(f"heroku{time.time_ns()}")
    yield (
        redis,
        {
            "DATABASE_URL": database.replace("postgresql://", "postgres://", 1),
            "REDIS_URL": redis.url,
            "BUCKETEER_BUCKET_NAME": moto.new_bucket(),
            "BUCKETEER_AWS_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "BUCKETEER_AWS_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "BUCKETEER_AWS_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
            "AWS_ENDPOINT_URL_S3": moto.url,
            "ADMIN_TOKEN": "generated-by-heroku",
            "ROLE": "serve",
            "WEB_CONCURRENCY": "2",
        },
    )
    redis.kill()


def test_a_heroku_like_deploy_loses_nothing_to_restarts(tmp_path, heroku, moto):
    redis, config_vars = heroku
    python_bin = str(Path(sys.executable).parent)  # the slug's Python: the project's venv here
    path = {"PATH": f"{python_bin}{os.pathsep}{os.environ['PATH']}"}
    dynos: list[Server] = []

    def dyno(name: str) -> Server:
        folder = tmp_path / name
        shutil.rmtree(folder, ignore_errors=True)  # a restarted dyno starts from the slug: an empty disk
        kind = name.split(".")[0]
        dynos.append(Server({**config_vars, **path, "DYNO": name}, kind=kind, cwd=dyno_folder(tmp_path, name),
                            only=True))  # fmt: skip
        return dynos[-1]

    worker = dyno("worker.1")
    started = time.monotonic()
    web = dyno("web.1")
    # The master binds $PORT before any worker imports the app: well within Heroku's 60 s boot limit.
    wait_for(lambda: accepts(web.port), 60, "the web to bind $PORT")
    bound = time.monotonic() - started
    try:
        assert web.wait_healthy()["model_version"] == 0
        wait_for(lambda: learner_seen(web), 120, "the worker to publish")
        acknowledged = []
        for i, (image, label) in enumerate(DRAWINGS * 2):
            status, body = request(f"{web.url}/api/train", {"image": image, "label": label})
            # The first step traces TensorFlow's training function: it may outlast TRAIN_WAIT (3 s) once.
            assert (status == 200 and body["status"] == "learned") or (i == 0 and status == 202), body
            acknowledged.append(int(body["sample_id"]))
            wait_for(lambda n=i + 1: stats(web)["model_version"] == n, 30, "the worker to learn it")
        assert acknowledged == list(range(1, 7))
        bucket = config_vars["BUCKETEER_BUCKET_NAME"]
        assert len(moto.keys(bucket, "log/")) == 6  # in Bucketeer's bucket, not on a dyno's disk
        for name in ("web.1", "worker.1"):  # nothing on the dynos' disks
            assert [p.name for p in (tmp_path / name / "tmp").iterdir()] == [".gitkeep"]
        assert redis.client().keys("LIMITS*")  # the rate limits count in the Key-Value Store, over TLS
        assert stats(web)["model_version"] == 6 and stats(web)["samples"]["total"] == 6
        answer = request(f"{web.url}/api/predict", {"image": DRAWINGS[1][0]})[1]
        assert not any(web.loads_tensorflow().values())  # ROLE=serve reached the web: no TensorFlow there

        # A second worker waits as a hot standby: it learns nothing while the first holds the lease.
        standby = dyno("worker.2")
        wait_for(lambda: "waiting as a standby" in standby.output(), 120, "the standby to wait")
        cpu_before = standby.cpu_seconds()
        for image, label in DRAWINGS:
            status, body = request(f"{web.url}/api/train", {"image": image, "label": label})
            assert status == 200, body
        assert standby.cpu_seconds() - cpu_before < 1.0  # three SGD steps and recordings cost the leader ~1 s
        assert "learner at version" not in standby.output()

        # The first worker dies (kill -9: no hand-over): the standby takes over within seconds.
        worker.kill()
        killed = time.monotonic()
        status, body = request(f"{web.url}/api/train", {"image": DRAWINGS[0][0], "label": 1})
        assert status in (200, 202), body
        failover = wait_for(lambda: stats(web)["model_version"] == 10, 30, "the standby to learn entry 10")
        failover = time.monotonic() - killed
        assert failover <= 10, failover

        # Heroku's restarts: SIGTERM to each dyno, then a new one from a fresh copy.
        stopped = stop_with_sigterm(standby)
        assert stopped <= 25 and "checkpoint written" in standby.output(), standby.output()[-2000:]
        assert stop_with_sigterm(web) < 30
        web, worker = dyno("web.1"), dyno("worker.1")
        assert web.wait_healthy()["model_version"] == 10  # the web of a fresh dyno: the last snapshot, at once
        wait_for(lambda: "learner at version" in worker.output(), 120, "the new worker to take the lease")
        assert "restored checkpoint 10" in worker.output()  # the hand-over's checkpoint: nothing to replay
        assert stats(web)["samples"]["total"] == 10
        status, body = request(f"{web.url}/api/train", {"image": DRAWINGS[1][0], "label": 7})
        assert status == 200 and body["model_version"] == 11, body
        keys = moto.keys(bucket, "log/")
        assert len(keys) == 11
    finally:
        for process in dynos:
            process.kill(signal.SIGKILL)
    print(f"bound $PORT in {bound:.1f} s; failover {failover:.1f} s; worker stopped {stopped:.1f} s after SIGTERM")
    assert answer["model_version"] == 6
