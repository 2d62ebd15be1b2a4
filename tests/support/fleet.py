"""A Heroku formation on one machine, against plans' real limits: PostgreSQL with a role allowed N connections,
Redis with maxclients N, web "dynos" (the Procfile's web command, ROLE=serve, WEB_CONCURRENCY workers each)
and `learn` processes (the Procfile's worker), all on one store. A router that stops sending to a dyno before it
is stopped, clients that train and predict through it, and a watcher that samples the servers' connection
counts (pg_stat_activity, CLIENT LIST) from connections of its own."""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from drawings import stroke_canvas, to_data_url
from pgserver import PostgresServer
from redisserver import RedisServer
from server import Server, request, wait_for_learner

DRAWINGS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
]
ROLE = "app"  # the app's database role: not a superuser, as on Heroku


class Plans:
    """PostgreSQL and Redis limited as Heroku's plans are; the superuser and one Redis client watch them."""

    def __init__(self, folder: Path, pg_limit: int = 20, redis_limit: int = 20):
        self.pg_limit, self.redis_limit = pg_limit, redis_limit
        self.postgres = PostgresServer(folder / "pg")
        self.database_url = self.postgres.create_app_role(ROLE, pg_limit)
        self.redis = RedisServer(folder / "redis", maxclients=redis_limit)
        self._watch = psycopg.connect(self.postgres.url, autocommit=True)
        self._redis = self.redis.client()

    def postgres_connections(self) -> dict[str, int]:
        """The app role's connections now, by application name (one name per process)."""
        rows = self._watch.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE usename = %s GROUP BY 1", (ROLE,)
        ).fetchall()
        return dict(rows)

    def redis_connections(self) -> int:
        """Redis clients now, this watcher's own included (maxclients counts it too)."""
        return len(self._redis.client_list())

    def refused(self) -> dict[str, int]:
        """What the servers turned away: PostgreSQL's "too many connections", Redis's rejected clients."""
        log = self.postgres.log.read_text(errors="replace")
        return {
            "postgres": log.count("too many connections"),
            "redis": int(self._redis.info("stats")["rejected_connections"]),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._watch.close()
        self.redis.kill()
        self.postgres.kill()


@dataclass
class Watcher:
    """Samples both servers' connection counts every `interval` seconds on a thread, keeping the peaks."""

    plans: Plans
    interval: float = 0.05
    peak_postgres: int = 0
    peak_redis: int = 0
    peak_by_process: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            counts = self.plans.postgres_connections()
            self.peak_postgres = max(self.peak_postgres, sum(counts.values()))
            for name, n in counts.items():
                self.peak_by_process[name] = max(self.peak_by_process.get(name, 0), n)
            self.peak_redis = max(self.peak_redis, self.plans.redis_connections())
            self._stop.wait(self.interval)


class Formation:
    """Web dynos and learner processes on `plans`, with the config vars that tell each process the formation."""

    def __init__(self, plans: Plans, store: Path, web_dynos: int, web_concurrency: int, workers: int, **env: str):
        self.plans = plans
        self.env = {
            "ROLE": "serve",
            "STORAGE_URL": str(store),
            "DATABASE_URL": plans.database_url,
            "RATE_LIMIT_STORAGE": plans.redis.url,
            "TRUSTED_PROXIES": "1",  # the clients below send X-Forwarded-For, as Heroku's router does
            "WEB_DYNOS": str(web_dynos),
            "WEB_CONCURRENCY": str(web_concurrency),
            "WORKER_DYNOS": str(workers),
            "PG_CONNECTION_LIMIT": str(plans.pg_limit),
            "REDIS_CONNECTION_LIMIT": str(plans.redis_limit),
            **env,
        }
        self.workers = [self._worker(i) for i in range(workers)]
        self.webs = [Server(self.env) for i in range(web_dynos)]
        for web in self.webs:
            health = web.wait_healthy()
        if health["database"]["state"] != "refused":
            wait_for_learner(self.webs[0].url)
        self.routable = list(self.webs)  # what the router sends requests to
        self._lock = threading.Lock()

    def _worker(self, i: int) -> Server:
        return Server(self.env, kind="worker")

    def route(self) -> Server:
        with self._lock:
            return random.choice(self.routable)

    def restart_all(self) -> None:
        """Every dyno restarted as a deploy does with preboot: each new one boots beside the old, takes the
        traffic, then the old is sent SIGTERM and finishes its requests; the new learners take the lease over."""
        new_workers = [self._worker(i) for i in range(len(self.workers))]
        new_webs = [Server(self.env) for i in range(len(self.webs))]
        for web in new_webs:
            web.wait_healthy()
        with self._lock:
            self.routable = list(new_webs)
        for old in self.webs + self.workers:
            with contextlib.suppress(ProcessLookupError):
                old.process.send_signal(signal.SIGTERM)
        for old in self.webs + self.workers:
            old.process.wait(timeout=60)
        self.webs, self.workers = new_webs, new_workers

    def close(self) -> None:
        for process in self.webs + self.workers:
            process.kill()


@dataclass
class Traffic:
    """Clients that label and ask through the formation's router, each from addresses of its own."""

    formation: Formation
    clients: int = 4
    statuses: dict[int, int] = field(default_factory=dict)
    learned: dict[int, int] = field(default_factory=dict)  # sample id -> label, of every acknowledged train
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Traffic:
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self, index: int) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            image, label = DRAWINGS[n % len(DRAWINGS)]
            address = f"198.19.{index}.{n % 250 + 1}"
            web = self.formation.route()
            path, body = "/api/predict", {"image": image}
            if n % 2:
                path, body = "/api/train", {"image": image, "label": label}
            try:
                status, answer = request(f"{web.url}{path}", body, timeout=60, headers={"X-Forwarded-For": address})
            except Exception as error:  # a refused connection: the router sent to a dyno that was gone
                with self._lock:
                    self.errors.append(f"{path} to {web.url}: {error!r}")
                continue
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if path == "/api/train" and status in (200, 202):
                    self.learned[int(answer["sample_id"])] = label
            time.sleep(0.02)


def learned_rows(plans: Plans) -> dict[int, int]:
    """Every drawing the learner recorded: number -> label."""
    with psycopg.connect(plans.postgres.url.rsplit("/", 1)[0] + f"/{ROLE}", autocommit=True) as connection:
        return dict(connection.execute("SELECT number, label FROM drawings WHERE kind = 'train'").fetchall())
