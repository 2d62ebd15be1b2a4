"""Every error answers JSON `{"error": code, "message": sentence}` with its status: one place maps them."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

from livedigits.errors import InputError
from livedigits.state.database import DatabaseError
from livedigits.state.storage import StorageError


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(InputError, lambda e: error_response(e.code, e.message, e.status))
    app.register_error_handler(StorageError, storage_unavailable)
    app.register_error_handler(DatabaseError, database_unavailable)
    app.register_error_handler(HTTPException, http_error)


def error_response(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=code, message=message), status


def storage_unavailable(error: StorageError) -> tuple[Response, int]:
    current_app.logger.error("storage unavailable: %s", error)
    return error_response(
        "storage_unavailable", "The drawing store is unavailable; nothing was saved. Try again shortly.", 503
    )


def database_unavailable(error: DatabaseError) -> tuple[Response, int]:
    current_app.logger.error("database unavailable: %s", error)
    return error_response(
        "database_unavailable", "The database is unavailable; nothing was saved. Try again shortly.", 503
    )


def http_error(error: HTTPException) -> tuple[Response, int]:
    code = (error.name or "error").lower().replace(" ", "_")
    return error_response(code, error.description or error.name, error.code or 500)
