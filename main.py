"""The Flask app (the layout's entry point): `create_app(config)` and `app` for gunicorn (`main:app`).

The app is wired in livedigits/web/app.py; the package's layers are drawn in docs/architecture.md.

    python main.py      # Flask's development server on PORT (default 5000), reachable from this machine only
"""

from __future__ import annotations

from flask import Flask

from livedigits.config import Config
from livedigits.web.app import begin_shut_down, close_service, create_app, shut_down

__all__ = ["begin_shut_down", "close_service", "create_app", "shut_down"]


def __getattr__(name: str) -> Flask:
    """`main.app` for gunicorn (`main:app`), built on first access rather than at import,
    so that tests and tools can import this module without loading models or opening storage."""
    if name != "app":
        raise AttributeError(name)
    globals()["app"] = create_app()
    return globals()["app"]


if __name__ == "__main__":
    # Deployments run gunicorn (the Procfile); scripts/run.sh runs that command locally.
    development = Config.from_env()
    create_app(development).run(host="127.0.0.1", port=development.port)
