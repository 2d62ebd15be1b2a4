"""The service's settings. `Config.from_env()` is the only code that reads the environment."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlsplit

from limits import parse_many

ROOT = Path(__file__).resolve().parent.parent  # the project's folder: models/, templates/, tmp/
# Per client address. A person clicks "predict" and labels a drawing every few seconds at most;
# admin routes are for one operator, and their limit slows token guessing. The models page shows up to 36
# drawings' images and the review page 20 at a time; an export builds a zip of megabytes for each request.
DEFAULT_RATE_LIMITS = "predict=60/minute;train=20/minute;admin=10/minute;samples=300/minute;export=3/minute"
RATE_LIMIT_KINDS = ("predict", "train", "admin", "samples", "export")
ROLES = ("all", "serve", "learn")
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss")
RATE_LIMIT_STORAGE_VARIABLES = "RATE_LIMIT_STORAGE (or, when unset, REDIS_URL)"


def parse_rate_limits(text: str) -> dict[str, str]:
    """RATE_LIMITS -> {kind: limit}: 'predict=60/minute;train=5/second,20/minute' (kinds separated by ';',
    several limits of one kind by ','). Kinds not named keep their default; 'off' for a kind lifts its limit,
    'off' alone lifts them all. ValueError for an unknown kind or a limit that does not parse."""
    if text.strip().lower() == "off":
        return {}
    limits = dict(item.split("=", 1) for item in DEFAULT_RATE_LIMITS.split(";"))
    for item in filter(None, (part.strip() for part in text.split(";"))):
        kind, _, value = (part.strip() for part in item.partition("="))
        if kind not in RATE_LIMIT_KINDS or not value:
            raise ValueError(f"RATE_LIMITS: expected kind=limit with kind one of {RATE_LIMIT_KINDS}, got {item!r}")
        if value.lower() != "off":
            parse_many(value)  # ValueError with the reason if it does not parse
        limits[kind] = value
    return {kind: value for kind, value in limits.items() if value.lower() != "off"}


def check_rate_limit_storage(url: str) -> None:
    """ValueError unless `url` is memory:// or a redis:// (rediss:// for TLS) URL with a host and, if any, a
    valid port. The message names the scheme only: the URL may hold a password."""
    scheme = url.split("://", 1)[0] if "://" in url else ""  # as written: redis-py refuses REDIS://
    expected = "expected memory:// or redis://[:password@]host[:port][/db] (rediss:// for TLS)"
    if scheme not in RATE_LIMIT_STORAGE_SCHEMES:
        got = f"a {scheme}:// URL" if scheme else "no scheme"
        raise ValueError(f"{RATE_LIMIT_STORAGE_VARIABLES}: {expected}, got {got}")
    if scheme == "memory":
        return
    parts = urlsplit(url)
    try:
        valid_port = parts.port != 0  # None (Redis's 6379) or 1..65535; ValueError for anything else
    except ValueError:
        valid_port = False
    if not parts.hostname or not valid_port:
        raise ValueError(f"{RATE_LIMIT_STORAGE_VARIABLES}: {expected}; this URL lacks a host or a valid port")


def unverified_tls(redis_url: str) -> str:
    """Heroku's Key-Value Store serves rediss:// with a self-signed certificate that no client can verify,
    so its REDIS_URL is used encrypted but unverified, as Heroku documents; redis:// is returned as it is."""
    if urlsplit(redis_url).scheme != "rediss" or "ssl_cert_reqs=" in redis_url:
        return redis_url
    return f"{redis_url}{'&' if '?' in redis_url else '?'}ssl_cert_reqs=none"


def memory_limit() -> int | None:
    """The container's memory limit in bytes (cgroup v2 or v1), or None where there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit"
            return int(text)
    return None


def cpu_share(on_dyno: bool, cpus: int, memory: int | None) -> int:
    """Threads for TensorFlow's kernels. Off Heroku: every CPU. On a dyno, `nproc` says 8 on Basic and Standard
    dynos, which share those CPUs with other dynos: 2 threads (a Standard-2X's share, about two cores' worth).
    Performance and Private dynos (2.5 GB and more) own their CPUs: all of them."""
    if not on_dyno or (memory is not None and memory >= 2_500 * 2**20):
        return max(1, cpus)
    return min(2, max(1, cpus))


def default_database_url(storage_url: str, tmp: Path) -> str:
    """SQLite beside a local store (`tmp/store` -> `tmp/store.sqlite3`); for a bucket, a file in `tmp/`
    named after it: fine on one machine, while a fleet's processes on several need DATABASE_URL."""
    parsed = urlparse(storage_url)
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme else storage_url)
        return f"sqlite:///{folder.parent / (folder.name + '.sqlite3')}"
    digest = hashlib.sha256(storage_url.encode()).hexdigest()[:12]
    return f"sqlite:///{tmp / f'facts-{parsed.netloc}-{digest}.sqlite3'}"


def normalise_url(url: str) -> str:
    """Heroku Postgres sets DATABASE_URL with the `postgres://` scheme; psycopg takes `postgresql://`."""
    return "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url


@dataclass(frozen=True)
class S3Credentials:
    """Keys for one bucket, when they are not boto3's usual AWS_* (Bucketeer's BUCKETEER_* variables)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str | None = None


@dataclass(frozen=True)
class Config:
    # Where the log of labelled drawings lives: a folder path, file:///path, or s3://bucket/prefix.
    storage_url: str = str(ROOT / "tmp" / "store")
    s3_endpoint_url: str | None = None
    s3_credentials: S3Credentials | None = None  # None: boto3's chain (AWS_ACCESS_KEY_ID, ...)
    # Where the facts about the drawings live: unset is SQLite beside the local store (default_database_url);
    # postgresql:// (or Heroku's postgres://) for a fleet. Not in repr: the URL may hold a password.
    database_url: str | None = field(default=None, repr=False)
    models_dir: Path = ROOT / "models"
    admin_token: str | None = None
    # Signs the undo capabilities /api/train hands out. Unset: a random key stored once in the store, so every
    # process of a fleet shares it. Not in repr: it is a secret.
    undo_secret: str | None = field(default=None, repr=False)
    # A phone canvas at 3x pixel density is ~1000x1000; its PNG stays well under 1 MB.
    max_request_bytes: int = 2 * 1024 * 1024
    # Checkpoints are caches: frequent enough that a boot replays little, rare enough to cost nothing.
    checkpoint_every: int = 200
    # How often a process looks for entries that other processes appended (seconds).
    sync_interval: float = 1.0
    # Which part of the service this process plays: "all" (serve HTTP and learn, one process), "serve" (HTTP
    # only, predicting from the snapshots a learner publishes; never imports TensorFlow) or "learn".
    role: str = "all"
    # How often the learner looks for new log entries (seconds); a train on a serve process waits for it.
    learn_interval: float = 0.2
    # How long /api/train waits for the learner before answering "stored, pending" (seconds). None: 3 s for
    # `serve` (the learner is another process, maybe down), answer_within_seconds for `all` (it is this process's
    # own thread). Never past answer_within_seconds after the request arrived, whatever this says.
    train_wait: float | None = None
    # The port `python main.py` serves on (gunicorn binds $PORT itself, from the Procfile).
    port: int = 5000
    # Per-client limits by kind of route (see parse_rate_limits); "off" for load tests.
    rate_limits: str = DEFAULT_RATE_LIMITS
    # Where rate-limit counters live: memory:// counts in each process; redis://host:port (rediss:// for
    # TLS) makes every process of a fleet draw from one budget. Not in repr: the URL may hold a password.
    rate_limit_storage: str = field(default="memory://", repr=False)
    # How many proxies in front of the app append to X-Forwarded-For (and set X-Forwarded-Proto): their
    # last hops name the client. 1 behind Heroku's router (the default when Heroku's DYNO is set); 0 when
    # clients connect directly, and the headers, which anyone can send, are ignored.
    trusted_proxies: int = 0
    # Origins allowed to call the original apps' routes (/hook, /hook2, /hook3, /estimate), comma-separated.
    cors_origins: str = "*"
    # Threads for TensorFlow's kernels (cpu_share: the dyno's share of the CPU, not the 8 CPUs it shows).
    cpu_threads: int = field(default_factory=lambda: cpu_share(False, os.cpu_count() or 1, None))
    # Running on a Heroku dyno (DYNO is set), whose disk is wiped at every restart and not shared between dynos:
    # the drawings must be in a bucket and the facts in PostgreSQL, unless `ephemeral_disk` allows it (a demo).
    on_dyno: bool = False
    ephemeral_disk: bool = False

    # --- the learner (bench/online.py, bench/crowd.py and bench/scale.py measured these) ---
    # Labels arriving faster than one step each are learned together: the learner takes every train entry waiting
    # when it starts a step (handed over, announced or found in the log), at most this many, as one group
    # (Learner.learn: an FNN step each, a CNN step per 4). One at a calm rate: one SGD step per correction.
    max_group: int = 16
    # An exclusion (or restore) of drawings at most this many entries back rebuilds the retrained models exactly, as
    # if the log had never held them: a replay of at most this many entries, plus checkpoint_every. Further back,
    # the drawings leave the dataset, counts, figures and queue at once, and the models keep what they learned.
    exact_window: int = 1000
    # Between checkpoints in the store (2.3 MB each), the learner keeps its state every this many entries in memory,
    # the last `kept_states` of them (~9 MB): an undo of a recent label replays at most this many.
    keep_every: int = 50
    kept_states: int = 4
    # The learner scores the held-out slice every this many versions (~0.35 s of CPU for both models on a 2-core
    # machine: ~3% of what 100 labels cost), or once it has been idle this long with the version moved.
    heldout_every_versions: int = 100
    heldout_idle_seconds: float = 30.0
    # While catching up on a backlog, a learner publishes at least this often, so servers see progress...
    publish_every_seconds: float = 0.5
    # ...and a `learn` process at most this often to storage: a burst is published as its latest state.
    publish_gap_seconds: float = 0.1
    # The `all` role's learner writes its snapshots to storage at most this often, for processes that follow it (a
    # web that replaces it, another web): the train that waits is answered from memory at once.
    storage_publish_seconds: float = 2.0
    # A learner with nothing to learn still tells servers it is alive this often (one small write).
    heartbeat_seconds: float = 5.0
    lease_poll_seconds: float = 0.5  # how often a waiting learner asks for the lease (its takeover's delay)
    waiting_fresh_seconds: float = 10.0  # a `learn` process's "I wait for the lease" counts this long
    # After SIGTERM a process exits by then whatever hangs (Heroku kills at 30): a `learn` process by its alarm, a web
    # by gunicorn's graceful_timeout (gunicorn.conf.py).
    shutdown_seconds: int = 20
    # Database connections of a learner (a `learn` process, or an `all` web): its primary (lease, LISTEN and
    # queries) and one for the recorder and checkpoints beside it. One alone costs a crowd's labels (docs/heroku.md).
    learner_pool_size: int = 2
    recent_samples: int = 48  # drawings listed on the models page
    differing_samples: int = 12  # ...and of those an original and its retrained model answered differently
    # --- the figures the models page shows (livedigits.state.figures) ---
    recent_window: int = 100  # "recent" accuracy is over this many of the latest labelled drawings
    history_points: int = 200  # points in the accuracy-by-version history (a snapshot holds at most 200)
    # A retrained model whose recent accuracy falls this far under its original's is flagged (poisoning), once
    # it has scored this many drawings.
    degraded_margin: float = 0.15
    degraded_min_scored: int = 30
    # The held-out curve kept in the database (every other point goes when it is full), how much of it is published,
    # and the digits per forward pass when scoring it (1,000 at once cost the learner 185 MB of RSS, 100 cost 25).
    heldout_points: int = 400
    heldout_published_points: int = 200
    heldout_batch: int = 100
    # --- the servers ---
    # With notifications, a process still looks at the log and the snapshots this often, in case one was lost.
    safety_net_seconds: float = 45.0
    # A learner that has not looked at the log for this long is reported as stalled (it looks every
    # learn_interval and says so at least every heartbeat_seconds, even with nothing to learn).
    stalled_after_seconds: float = 30.0
    waiting_poll_seconds: float = 0.1  # how often a server looks for a new snapshot while a train waits for one
    # An appended entry rides on its notification when it is this small (PostgreSQL's limit is 8,000 bytes), and the
    # drawing's digit with it when both fit: the learner then reads and decodes nothing (a GET and ~5 ms a label).
    notify_entry_bytes: int = 7000
    max_stroke_points: int = 20_000  # stroke points kept with an entry's metadata; more is refused
    undo_seconds: int = 60  # how long /api/train's undo token takes the drawing back
    # --- the database ---
    # Connections per serve worker: one, shared by its threads, which also listens (state.connections). Its
    # queries take about a millisecond: a second connection bought nothing measurable (docs/heroku.md).
    db_pool_size: int = 1
    db_connect_timeout: float = 3.0  # seconds: a request never hangs on an absent database
    db_idle_seconds: float = 30.0  # a connection unused this long closes (not a listening or locked primary)
    # --- the formation and its plans' connections (livedigits.formation: every process checks the sum at boot) ---
    pg_connection_limit: int = 20  # Heroku Postgres essential plans (PG_CONNECTION_LIMIT)
    redis_connection_limit: int = 20  # Heroku Key-Value Store mini (REDIS_CONNECTION_LIMIT)
    web_dynos: int = 1  # WEB_DYNOS: Heroku does not tell a dyno how many there are; set it when scaling
    web_concurrency: int = 1  # gunicorn workers per serve web dyno: WEB_CONCURRENCY, as gunicorn reads it
    worker_dynos: int = 1  # WORKER_DYNOS: `learn` processes, the learner and any standbys
    # A deploy, or a restart with preboot, runs every new dyno beside the old one until the old has stopped.
    restart_overlap: int = 2
    redis_pool_size: int = 1  # Redis connections per web worker: a rate-limit check is one sub-millisecond script
    # --- exports and migrations ---
    parallel_reads: int = 8  # concurrent reads of the store (S3 answers each GET in tens of ms)
    # Privacy and fuzzing (issue 33)
    # A public drawing's image may be kept this long by browsers and shared caches without asking again: an
    # exclusion or an undo reaches every cache within it. Asking again costs one indexed read (the ETag), no storage.
    public_image_seconds: int = 60
    # How long an image link that /api/review signs for the operator works: the review page asks for new ones
    # whenever it reloads its queue, and a link copied out of it stops working soon.
    admin_image_seconds: int = 600
    # The router's 30 s and restarts (issue 33)
    # Heroku's router answers H12 for a request that sends no byte for 30 s: a request that waits for the learner (a
    # train, an admin change) answers by this many seconds after it arrived, 202 (pending) if it is not learned yet;
    # 10 s to spare for its storage writes, its queueing and the router's own hop.
    answer_within_seconds: float = 20.0
    # gunicorn's threads per web worker (gunicorn.conf.py). None: 20 for `all`, so that a crowd's group (max_group)
    # can wait to be learned together with free_threads to spare; 8 for `serve`.
    web_threads: int | None = None
    # Threads of a web worker that no request may spend waiting for the learner: predictions and /healthz always find
    # one, however many trains wait. A train beyond the others answers 202 at once; its entry is learned all the same.
    free_threads: int = 4
    # After SIGTERM the `all` web's learner stops between entries and writes its hand-over checkpoint within this
    # long, else the process exits without one (the log holds every label: the next learner replays from the last
    # checkpoint). Under shutdown_seconds, which is gunicorn's graceful_timeout: the worker ends before it is killed.
    hand_over_seconds: float = 15.0
    # Bounded inputs (issue 33)
    # Pixels a drawing may decode to, read from its header before any is decoded (its sides stay within
    # MAX_IMAGE_SIDE too). The page sends 280x280 and a phone canvas at 3x density is ~1000x1000: 2048x2048
    # leaves a tablet's full-screen canvas room, and holds a decode to 16 MB of RGBA.
    max_image_pixels: int = 2048 * 2048
    # Drawings decoded at once per process; the rest wait their turn. Decoding is CPU-bound and a dyno has about
    # two cores' share (cpu_share): more at once would finish no sooner, and would hold more pixels.
    decode_slots: int = 2
    # How long a request waits for a slot before it is answered 503 "busy": a burst of the largest drawings drains
    # in a few seconds, an ordinary one decodes in ~1 ms; well under the router's 30 s (H12).
    decode_wait_seconds: float = 10.0
    # Drawings are stored greyscale, their longer side at most this: a model needs 28x28 (a 20x20 box), and 512
    # keeps a drawing legible for review. The page sends 280x280, stored as it is; a 4096x4096 JPEG of noise
    # would otherwise be a 14 MB PNG, and this bounds any to 256 kB of pixels.
    stored_side: int = 512
    # Strokes kept with a label (besides max_stroke_points): a digit takes 1 to 4, a scribbled-over one a few
    # dozen; coordinates are the drawing's pixels (|x|, |y| within its longest side); t_ms counts from the first
    # point, and a drawing takes seconds (an hour is plenty).
    max_strokes: int = 256
    max_stroke_coordinate: float = 4096.0
    max_stroke_ms: int = 3_600_000

    def __post_init__(self) -> None:
        parse_rate_limits(self.rate_limits)  # a typo fails at boot, not as an unlimited service
        if self.role not in ROLES:
            raise ValueError(f"ROLE must be one of {', '.join(ROLES)}, not {self.role!r}")
        check_rate_limit_storage(self.rate_limit_storage)
        if self.trusted_proxies < 0:
            raise ValueError("TRUSTED_PROXIES must be 0 or more")
        if self.cpu_threads < 1:
            raise ValueError("CPU_THREADS must be 1 or more")
        if self.on_dyno and not self.ephemeral_disk:
            if urlsplit(self.storage_url).scheme != "s3":
                raise ValueError(
                    "On Heroku the dyno's disk is wiped at every restart and no other dyno sees it: keep the drawings "
                    "in a bucket. Attach Bucketeer (heroku addons:create bucketeer:hobbyist) or set STORAGE_URL="
                    "s3://bucket/prefix with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION. "
                    "EPHEMERAL_DISK=1 runs anyway, for a demo that loses everything at the daily restart."
                )
            if not self.database_url:
                raise ValueError(
                    "On Heroku the dyno's disk is wiped at every restart and no other dyno sees it: keep the facts "
                    "in PostgreSQL. Attach it (heroku addons:create heroku-postgresql:essential-0 sets DATABASE_URL). "
                    "EPHEMERAL_DISK=1 runs anyway, for a demo that loses everything at the daily restart."
                )

    @property
    def database(self) -> str:
        """The database URL: DATABASE_URL as psycopg takes it, else SQLite beside the store."""
        if self.database_url:
            return normalise_url(self.database_url)
        return default_database_url(self.storage_url, ROOT / "tmp")

    @property
    def train_wait_seconds(self) -> float:
        if self.train_wait is not None:
            return self.train_wait
        return self.answer_within_seconds if self.role == "all" else 3.0

    @property
    def threads(self) -> int:
        """gunicorn's threads per web worker (web_threads, or its default for the role)."""
        if self.web_threads is not None:
            return self.web_threads
        return self.max_group + self.free_threads if self.role == "all" else 8

    @property
    def max_waiting(self) -> int:
        """How many requests of one web worker may wait for the learner at once."""
        return max(0, self.threads - self.free_threads)

    @property
    def request_limits(self) -> dict[str, str]:
        """{"predict": "60/minute", ...}: the kinds of route that are limited, and how."""
        return parse_rate_limits(self.rate_limits)

    @classmethod
    def from_env(cls) -> Config:
        """What the environment says (the only reader of it: `_from_env`, below the class)."""
        return _from_env(cls)


def _from_env(cls: type[Config]) -> Config:
    env = os.environ
    defaults = cls()
    storage_url, credentials = env.get("STORAGE_URL"), None
    if not storage_url and env.get("BUCKETEER_BUCKET_NAME"):  # Heroku's Bucketeer add-on: its bucket, its keys
        storage_url = f"s3://{env['BUCKETEER_BUCKET_NAME']}"
        credentials = S3Credentials(
            env.get("BUCKETEER_AWS_ACCESS_KEY_ID", ""),
            env.get("BUCKETEER_AWS_SECRET_ACCESS_KEY", ""),
            env.get("BUCKETEER_AWS_REGION") or None,
        )
    on_dyno = bool(env.get("DYNO"))
    return cls(
        storage_url=storage_url or defaults.storage_url,
        s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
        s3_credentials=credentials,
        database_url=env.get("DATABASE_URL") or None,
        models_dir=Path(env.get("MODELS_DIR") or defaults.models_dir),
        admin_token=env.get("ADMIN_TOKEN") or None,
        undo_secret=env.get("UNDO_SECRET") or None,
        checkpoint_every=int(env.get("CHECKPOINT_EVERY") or defaults.checkpoint_every),
        sync_interval=float(env.get("SYNC_INTERVAL") or defaults.sync_interval),
        role=(env.get("ROLE") or defaults.role).strip().lower(),
        learn_interval=float(env.get("LEARN_INTERVAL") or defaults.learn_interval),
        train_wait=float(env["TRAIN_WAIT"]) if env.get("TRAIN_WAIT") else None,
        port=int(env.get("PORT") or defaults.port),
        rate_limits=env.get("RATE_LIMITS") or defaults.rate_limits,
        # Attaching Heroku's Key-Value Store sets REDIS_URL: a fleet then shares its limits unasked.
        rate_limit_storage=env.get("RATE_LIMIT_STORAGE")
        or (unverified_tls(env["REDIS_URL"]) if env.get("REDIS_URL") else defaults.rate_limit_storage),
        trusted_proxies=int(env.get("TRUSTED_PROXIES") or (1 if on_dyno else 0)),
        cors_origins=env.get("CORS_ORIGINS") or defaults.cors_origins,
        cpu_threads=int(env.get("CPU_THREADS") or cpu_share(on_dyno, os.cpu_count() or 1, memory_limit())),
        on_dyno=on_dyno,
        ephemeral_disk=env.get("EPHEMERAL_DISK", "").strip().lower() in ("1", "true", "yes"),
        pg_connection_limit=int(env.get("PG_CONNECTION_LIMIT") or defaults.pg_connection_limit),
        redis_connection_limit=int(env.get("REDIS_CONNECTION_LIMIT") or defaults.redis_connection_limit),
        web_dynos=int(env.get("WEB_DYNOS") or defaults.web_dynos),
        web_concurrency=int(env.get("WEB_CONCURRENCY") or defaults.web_concurrency),
        worker_dynos=int(env.get("WORKER_DYNOS") or defaults.worker_dynos),
    )
