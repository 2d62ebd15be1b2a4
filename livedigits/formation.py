"""What a formation holds of the plans' connections, counted the same way by every process at boot.

Heroku's plans limit connections per app (Postgres essential: 20; Key-Value Store mini: 20), and a deploy or a
restart with preboot runs each new dyno beside the old one until the old has stopped (Config.restart_overlap).
Each process has a fixed cap (state.connections for PostgreSQL, web.security for Redis), so the worst case is
their sum: what a formation would need at the worst moment of a restart. A process of a formation over a limit
holds none: it logs why, once, and serves what needs no database (a web) or waits (a learner), rather than
crash into Heroku's restart loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from livedigits.config import Config


@dataclass(frozen=True)
class Formation:
    web_dynos: int
    web_processes: int  # gunicorn workers per web dyno
    worker_dynos: int
    per_web: int  # PostgreSQL connections per web process
    per_learner: int  # ...per `learn` process
    redis_per_web: int
    overlap: int

    @classmethod
    def of(cls, config: Config) -> Formation:
        all_role = config.role == "all"  # one gunicorn worker (gunicorn.conf.py), and a learner in it
        return cls(
            web_dynos=config.web_dynos,
            web_processes=1 if all_role else config.web_concurrency,
            worker_dynos=config.worker_dynos,
            per_web=config.learner_pool_size if all_role else config.db_pool_size,
            per_learner=config.learner_pool_size,
            redis_per_web=config.redis_pool_size,
            overlap=config.restart_overlap,
        )

    def postgres(self) -> int:
        """PostgreSQL connections at most, old and new dynos overlapping."""
        running = self.web_dynos * self.web_processes * self.per_web + self.worker_dynos * self.per_learner
        return running * self.overlap

    def redis(self) -> int:
        """Redis connections at most (the web processes' rate limits; learners hold none)."""
        return self.web_dynos * self.web_processes * self.redis_per_web * self.overlap

    def describe(self) -> str:
        return (f"{self.web_dynos} web dyno(s) x {self.web_processes} process(es) and {self.worker_dynos} worker(s), "
                f"x{self.overlap} while restarting")  # fmt: skip


def postgres_refusal(config: Config) -> str | None:
    """Why this formation cannot hold its PostgreSQL connections (the log line, /healthz), or None when it fits."""
    if not config.database.startswith(("postgres://", "postgresql://")):
        return None  # SQLite: one machine, no connection limit
    needed = Formation.of(config).postgres()
    return _over(config, "database", needed, "PostgreSQL", "PG_CONNECTION_LIMIT", config.pg_connection_limit,
                 "this process holds none")  # fmt: skip


def redis_refusal(config: Config) -> str | None:
    """Why this formation cannot hold its Redis connections, or None: the rate limits are then counted in each
    process's memory (as with memory://), which keeps every limit per process."""
    if not config.rate_limit_storage.startswith("redis"):
        return None
    needed = Formation.of(config).redis()
    return _over(config, "Redis", needed, "Redis", "REDIS_CONNECTION_LIMIT", config.redis_connection_limit,
                 "rate limits count per process instead")  # fmt: skip


def _over(config: Config, plan: str, needed: int, server: str, variable: str, limit: int, so: str) -> str | None:
    if needed <= limit:
        return None
    return (f"formation over its {plan} plan: {Formation.of(config).describe()} needs {needed} {server} connections, "
            f"{variable} is {limit}; {so}. Scale down, or upgrade the plan and set {variable} "
            "(README, Scaling)")  # fmt: skip
