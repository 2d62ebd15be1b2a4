"""The service's settings. `Config.from_env()` is the only code that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_RATE_LIMITS = "predict=60/minute;train=20/minute"


@dataclass(frozen=True)
class Config:
    # Where the log of labelled drawings lives: a folder path, file:///path, or s3://bucket/prefix.
    storage_url: str = str(ROOT / "tmp" / "store")
    s3_endpoint_url: str | None = None
    models_dir: Path = ROOT / "models"
    admin_token: str | None = None
    # A phone canvas at 3x pixel density is ~1000x1000; its PNG stays well under 1 MB.
    max_request_bytes: int = 2 * 1024 * 1024
    # Checkpoints are caches: frequent enough that a boot replays little, rare enough to cost nothing.
    checkpoint_every: int = 50
    # How often a process looks for entries that other processes appended (seconds).
    sync_interval: float = 1.0
    rate_limits: str = DEFAULT_RATE_LIMITS
    cors_origins: str = "*"

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        defaults = cls()
        return cls(
            storage_url=env.get("STORAGE_URL") or defaults.storage_url,
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            models_dir=Path(env.get("MODELS_DIR") or defaults.models_dir),
            admin_token=env.get("ADMIN_TOKEN") or None,
            checkpoint_every=int(env.get("CHECKPOINT_EVERY") or defaults.checkpoint_every),
            sync_interval=float(env.get("SYNC_INTERVAL") or defaults.sync_interval),
            rate_limits=env.get("RATE_LIMITS") or defaults.rate_limits,
            cors_origins=env.get("CORS_ORIGINS") or defaults.cors_origins,
        )
