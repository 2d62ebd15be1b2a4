"""The app factory: `create_app(config)` wires storage, the database and the models once per process, and the
learner beside the server in the `all` role; requests only read them."""

from __future__ import annotations

import logging

from flask import Flask

from livedigits.config import ROOT, Config
from livedigits.formation import postgres_refusal
from livedigits.serving.server import Server
from livedigits.state.database import Database
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Journal
from livedigits.state.storage import open_store
from livedigits.web.admin import admin
from livedigits.web.api import api
from livedigits.web.encoding import FastJSON
from livedigits.web.errors import install_error_handlers
from livedigits.web.legacy import legacy
from livedigits.web.pages import pages
from livedigits.web.security import install_security

logger = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Wire config, storage and models once per process; requests only read them."""
    config = config or Config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask("livedigits", template_folder=ROOT / "templates", static_folder=ROOT / "static")
    app.json = FastJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_request_bytes
    app.extensions["digits"], app.extensions["learner"] = open_service(config)
    app.extensions["config"] = config
    install_security(app, config)
    for blueprint in (pages, api, admin, legacy):
        app.register_blueprint(blueprint)
    install_error_handlers(app)
    return app


def open_service(config: Config) -> tuple[Server, object | None]:
    """The server, and in the `all` role the learner running beside it, both given the one inbox through which
    the server hands the learner each label it stores."""
    if config.role == "learn":
        raise ValueError("ROLE=learn is the learner process: run `python -m livedigits.learning.worker`")
    journal = Journal(open_store(config))
    refused = postgres_refusal(config)
    if refused:
        logger.error(refused)
    # One set of connections per process, shared by its threads (and, in the `all` role, its learner).
    size = config.db_pool_size if config.role == "serve" else config.learner_pool_size
    db = Database(config.database, size, config.db_connect_timeout, name=f"web-{config.role}",
                  idle_seconds=config.db_idle_seconds, refused=refused)  # fmt: skip
    if config.role == "serve":
        server = Server(config, journal, db)
        server.follow_storage()
        return server, None
    # Imported here: the learner is the only importer of TensorFlow, and a serve process never loads it.
    from livedigits.learning.in_process import InProcessLearner

    inbox = Inbox()
    server = Server(config, journal, db, inbox)
    return server, InProcessLearner(config, journal, db, server, inbox)


def begin_shut_down(app: Flask) -> None:
    """SIGTERM came (gunicorn.conf.py's handler; returns at once): requests waiting for the learner answer now, and
    an `all` learner stops between entries and hands over on its own thread while the requests in flight finish."""
    app.extensions["digits"].stop_waiting()
    if app.extensions.get("learner") is not None:
        app.extensions["learner"].begin_hand_over()


def shut_down(app: Flask) -> None:
    """The web process is stopping (gunicorn's worker_exit, after SIGTERM): an `all` learner hands over."""
    if app.extensions.get("learner") is not None:
        app.extensions["learner"].hand_over()
    close_service(app)


def close_service(app: Flask) -> None:
    """Stop the background threads (tests; gunicorn workers just exit)."""
    if app.extensions.get("learner") is not None:
        app.extensions["learner"].close()
    app.extensions["digits"].close()
