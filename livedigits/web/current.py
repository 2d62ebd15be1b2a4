"""What a request reads of its app: the server and the configuration, wired once by `create_app`."""

from __future__ import annotations

from flask import current_app

from livedigits.config import Config
from livedigits.serving.server import Server


def server() -> Server:
    return current_app.extensions["digits"]


def config() -> Config:
    return current_app.extensions["config"]
