from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))  # the helpers the tests share

import main  # noqa: E402
from livedigits import config as configuration  # noqa: E402
from livedigits.config import Config  # noqa: E402
from main import create_app  # noqa: E402

MNIST = ROOT.parent / "shared" / "data" / "mnist"
pytest_plugins = ["ci"]  # under CI a skipped test fails (tests/support/ci.py)


# Modules whose every test runs twice: on the embedded SQLite and on a real PostgreSQL that the suite starts (the
# create-only log, S3 and its outages, fleet convergence, kills, exclusions, undo and review). The rest: SQLite.
BOTH_DATABASES = {
    "test_api",
    "test_comparison",
    "test_database",
    "test_database_processes",
    "test_deploy",
    "test_privacy",
    "test_reliability",
    "test_reliability_fleet",
    "test_review",
    "test_roles",
    "test_s3",
    "test_threads",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "postgres_only: runs on PostgreSQL alone, in any module (notifications, outages of its own)"
    )


def pytest_generate_tests(metafunc):
    # A test on an app its module shares (a module-scoped fixture: test_reliability's `shared`) keeps that app's.
    both = metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_DATABASES and "shared" not in metafunc.fixturenames
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("postgres_only"):
        # What SQLite does not have is not generated there: a skip fails under CI (tests/support/ci.py).
        metafunc.parametrize("backend", ["postgres"], indirect=True)
    elif both and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """Debian's PostgreSQL on a free loopback port (as an unprivileged user when we are root), for the session."""
    from pgserver import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.kill()


@pytest.fixture(autouse=True)
def backend(request, monkeypatch) -> str:
    """Which database the apps of this test use by default: "sqlite", or "postgres" with a fresh database for each
    store the test opens (tests/server.py hands the same one to the processes it starts)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        server = request.getfixturevalue("postgres")
        made: dict[str, str] = {}

        def fresh(storage_url: str, tmp: Path) -> str:
            if storage_url not in made:
                made[storage_url] = server.create_database(f"t{uuid.uuid4().hex[:16]}")
            return made[storage_url]

        monkeypatch.setattr(configuration, "default_database_url", fresh)
    return kind


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(autouse=True, scope="module")
def close_apps(request):
    """Every app a test module makes is closed after the module (module-scoped fixtures share theirs across
    its tests): each runs background threads (its learner, its snapshot follower)."""
    made = []

    def tracked(*args, **kwargs) -> Flask:
        made.append(create_app(*args, **kwargs))
        if made[-1].extensions.get("learner") is not None:
            # An `all` app answers at once and replays the log on its learner's thread: the tests start from the
            # replayed state (tests/processes/test_long_replay.py runs the boot that serves during its replay).
            made[-1].extensions["learner"].wait_booted()
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(main, "create_app", tracked)
        if getattr(request.module, "create_app", None) is create_app:
            patch.setattr(request.module, "create_app", tracked)
        yield
    for app in made:
        main.close_service(app)


@pytest.fixture
def app(store: Path) -> Flask:
    return main.create_app(Config(storage_url=str(store), sync_interval=0.0))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def mnist_test():
    from livedigits.state.mnist import load_split

    return load_split(MNIST, "t10k")


@pytest.fixture(scope="session")
def moto():
    """moto's S3 server on loopback, in its own process: one for the session, a new bucket per test."""
    from s3server import MotoServer

    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch):
    from s3server import CREDENTIALS

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def wait_for_version(client: FlaskClient, version: int, timeout: float = 30.0) -> dict:
    """/healthz once the served models include entry `version`: the learner applies entries on its own thread."""
    deadline = time.monotonic() + timeout
    while (health := client.get("/healthz").get_json())["model_version"] < version:
        assert time.monotonic() < deadline, f"still at version {health['model_version']}, waiting for {version}"
        time.sleep(0.02)
    return health


@pytest.fixture
def redis_server(tmp_path: Path):
    """Debian's redis-server on a free loopback port, without persistence, killed after the test."""
    from redisserver import RedisServer

    server = RedisServer(tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, one per test module (tests/browsing.py)."""
    from browsing import launch

    with launch() as browser:
        yield browser


@pytest.fixture
def base_url(app):
    """The app on a free loopback port with the production CSP, for a browser (tests/browsing.py)."""
    from browsing import serve

    with serve(app) as url:
        yield url
