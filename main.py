"""The Flask app: `create_app(config)` wires storage and models once; `app` serves gunicorn."""

from __future__ import annotations

import hmac
import io
import json
import logging
import math

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

import model_export
from config import Config
from database import Database, DatabaseError
from dataset import export_zip
from functions import (
    CANT_RECOGNIZE,
    InputError,
    decode_digit,
    decode_drawing,
    digit_from_pixels,
    legacy_top3,
    parse_label,
)
from journal import Journal
from security import install_security
from serving import Server
from storage import StorageError

MAX_STROKE_POINTS = 20_000

routes = Blueprint("routes", __name__)


def create_app(config: Config | None = None) -> Flask:
    """Wire config, storage and models once per process; requests only read them."""
    config = config or Config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_request_bytes
    app.extensions["digits"], app.extensions["learner"] = open_service(config)
    app.extensions["config"] = config
    install_security(app, config)
    app.register_blueprint(routes)
    app.register_error_handler(InputError, lambda e: error_response(e.code, e.message, e.status))
    app.register_error_handler(StorageError, storage_unavailable)
    app.register_error_handler(DatabaseError, database_unavailable)
    app.register_error_handler(HTTPException, http_error)
    return app


def open_service(config: Config) -> tuple[Server, object | None]:
    """The server, and in the `all` role the learner running beside it (the only import of TensorFlow)."""
    if config.role == "learn":
        raise ValueError("ROLE=learn is the learner process: run `python learner.py`, not the web app")
    journal = Journal(config.open_storage())
    db = Database(config.database)  # one pool per process, shared by its threads (and its learner)
    server = Server(config, journal, db, config.models_dir)
    if config.role == "serve":
        server.follow_storage()
        return server, None
    from learner import InProcessLearner

    return server, InProcessLearner(config, journal, db, server)


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


def service() -> Server:
    return current_app.extensions["digits"]


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


def json_body() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser's stack: not a body this API takes
        body = None
    if not isinstance(body, dict):
        raise InputError("invalid_json", "Send a JSON object with Content-Type: application/json.")
    return body


def form_field(name: str) -> str:
    value = request.form.get(name)
    if value is None:
        raise InputError("missing_field", f"The form field '{name}' is required.")
    return value


def parse_strokes(value: object) -> list | None:
    """Optional strokes: [[[x, y, t_ms], ...], ...] of numbers, kept with the entry's metadata."""
    if value is None:
        return None
    message = "'strokes' must be a list of strokes, each a list of [x, y, t_ms] numbers."
    if not isinstance(value, list) or not all(isinstance(stroke, list) for stroke in value):
        raise InputError("invalid_strokes", message)
    points = [point for stroke in value for point in stroke]
    if len(points) > MAX_STROKE_POINTS:
        raise InputError("invalid_strokes", f"At most {MAX_STROKE_POINTS} stroke points are kept.")
    for point in points:
        if not (isinstance(point, list) and len(point) == 3 and all(is_finite_number(v) for v in point)):
            raise InputError("invalid_strokes", message)
    return value


def is_finite_number(value: object) -> bool:
    """An int or a finite float, not a bool: Python's JSON parser also reads NaN and Infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


# --- pages ----------------------------------------------------------------------------------------


@routes.get("/")
def draw_page() -> str:
    return render_template("index.html")


@routes.get("/models")
def models_page() -> str:
    return render_template("models.html")


@routes.get("/about")
def about_page() -> str:
    return render_template("about.html")


@routes.get("/review")
def review_page() -> str:
    return render_template("review.html")


@routes.get("/internals")
def internals_page() -> str:
    return render_template("internals.html")


@routes.get("/healthz")
def healthz() -> Response:
    return jsonify(service().health())


# --- the API --------------------------------------------------------------------------------------


@routes.post("/api/predict")
def predict() -> Response:
    digit = decode_digit(json_body().get("image"))
    return jsonify(service().predict(digit))


@routes.post("/api/train")
def train() -> tuple[Response, int]:
    body = json_body()
    label = parse_label(body.get("label"))
    strokes = parse_strokes(body.get("strokes"))
    digit, png = decode_drawing(body.get("image"))
    answer, learned = service().train(digit, png, label, strokes, source="api/train")
    return jsonify(answer), 200 if learned else 202


@routes.post("/api/undo")
def undo_train() -> Response:
    """Take back one's own drawing with the capability /api/train answered (no admin token)."""
    return jsonify(service().undo(json_body().get("undo_token")))


@routes.post("/api/internals")
def internals() -> Response:
    digit = decode_digit(json_body().get("image"))
    return jsonify(service().internals(digit))


@routes.get("/api/stats")
def stats() -> Response:
    figures = service().stats()
    for drawing in figures["disagreements"]:
        drawing["image_url"] = url_for("routes.sample_image", sample_id=int(drawing["sample_id"]))
    return jsonify(figures)


@routes.get("/api/samples/recent")
def recent_samples() -> Response:
    samples = [
        {**s, "image_url": url_for("routes.sample_image", sample_id=int(s["sample_id"]))}
        for s in service().recent_samples()
    ]
    return jsonify(samples=samples)


@routes.get("/api/samples/<int:sample_id>.png")
def sample_image(sample_id: int) -> Response:
    try:
        png = service().drawing(sample_id)
    except KeyError:
        raise InputError("not_found", f"There is no drawing {sample_id}.", 404) from None
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400"})


@routes.post("/api/admin/reset")
def admin_reset() -> Response:
    require_admin()
    return jsonify(model_version=service().reset())


@routes.post("/api/admin/rollback")
def admin_rollback() -> Response:
    require_admin()
    target = json_body().get("model_version")
    if not isinstance(target, int) or isinstance(target, bool):
        raise InputError("invalid_version", "Send the version to roll back to as an integer 'model_version'.")
    return jsonify(model_version=service().rollback(target))


@routes.get("/api/review")
def review() -> Response:
    """The drawings most likely mislabelled first; `label`, `source`, `excluded=1`, `offset`, `limit`."""
    require_admin()
    args = request.args
    label = parse_label(args["label"]) if args.get("label") else None
    offset = query_int("offset", 0, 0, 10**9)
    limit = query_int("limit", 50, 1, 200)
    excluded = args.get("excluded", "0") in ("1", "true")
    return jsonify(service().review(label, args.get("source") or None, excluded, offset, limit))


@routes.post("/api/admin/exclude")
def admin_exclude() -> Response:
    require_admin()
    return jsonify(service().exclude(sample_ids(json_body().get("sample_ids"))))


@routes.post("/api/admin/restore")
def admin_restore() -> Response:
    require_admin()
    return jsonify(service().restore(sample_ids(json_body().get("sample_ids"))))


def query_int(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise InputError(f"invalid_{name}", f"'{name}' must be an integer from {low} to {high}.")
    return int(value)


def sample_ids(value: object) -> list[int]:
    """'sample_ids': a list of entry numbers, as integers or as the 10-digit strings the API answers."""
    message = "Send 'sample_ids' as a non-empty list of sample ids (integers or strings of digits)."
    if not isinstance(value, list) or not value:
        raise InputError("invalid_sample_ids", message)
    numbers = []
    for item in value:
        if isinstance(item, str) and item.isdigit() and len(item) <= 10 and item.isascii():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or not 0 < item < 10**10:
            raise InputError("invalid_sample_ids", message)
        numbers.append(item)
    return numbers


def require_admin() -> None:
    """Bearer ADMIN_TOKEN, compared in constant time; admin routes are off when it is unset."""
    token = current_app.extensions["config"].admin_token
    if not token:
        raise InputError("admin_disabled", "Admin actions are disabled: ADMIN_TOKEN is not set.", 403)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given:
        raise InputError("unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.", 401)
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise InputError("forbidden", "The admin token is wrong.", 403)


@routes.get("/api/samples/export")
def export_samples() -> Response:
    """The collected dataset as a zip (the files `python -m dataset export` writes); admin only."""
    require_admin()
    archive = export_zip(service().journal.storage)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name="digits-dataset.zip")


@routes.get("/api/models/export")
def export_models() -> Response:
    """The retrained models as served now, in one zip (model_export.py); admin only."""
    require_admin()
    server = service()
    snapshot = server.snapshot  # one reference: every file is this version's, whatever is learned meanwhile
    archive = model_export.models_zip(
        snapshot, server.stats(snapshot), model_export.load_template(), model_export.held_out_file()
    )
    return send_file(io.BytesIO(archive), mimetype="application/zip", as_attachment=True,
                     download_name=f"digits-models-v{snapshot.version}.zip")  # fmt: skip


# --- the original apps' clients (form-encoded, exactly as they sent it) ----------------------------


@routes.post("/hook")
def hook_collect() -> Response:
    label = parse_label(form_field("digit"))
    _, png = decode_drawing(form_field("imageBase64"))
    name = service().collect(png, label, source="hook")
    return Response(f"Image saved successfully with the name {name}", mimetype="text/plain")


@routes.post("/hook2")
def hook_predict() -> Response:
    try:
        digit = decode_digit(form_field("imageBase64"))
    except InputError as error:
        if error.code != "empty_drawing":
            raise
        return Response("Can't predict, when nothing is drawn", mimetype="text/html")
    result = service().predict(digit)
    predictions = result["predictions"]
    legacy = {
        "answer": result["answer"] if result["answer"] is not None else CANT_RECOGNIZE,
        "fnn": legacy_top3(predictions["fnn"]["original"]),
        "fnn_t": legacy_top3(predictions["fnn"]["retrained"]),
        "cnn": legacy_top3(predictions["cnn"]["original"]),
        "cnn_t": legacy_top3(predictions["cnn"]["retrained"]),
    }
    # JSON text as text/html, as the original's plain Flask string: its page JSON.parses what jQuery hands it,
    # and jQuery would already have parsed an application/json answer into an object.
    return Response(json.dumps(legacy), mimetype="text/html")


@routes.post("/hook3")
def hook_train() -> Response:
    label = parse_label(form_field("digit"))
    digit, png = decode_drawing(form_field("imageBase64"))
    _, learned = service().train(digit, png, label, source="hook3")
    if not learned:
        return Response("Stored; learning is pending", status=202, mimetype="text/plain")
    return Response("Trained", mimetype="text/plain")


@routes.post("/estimate")
def estimate() -> Response:
    digit = digit_from_pixels(json_body().get("input"))
    result = service().predict(digit)
    if result["answer"] is not None:
        return jsonify(estimated=int(result["answer"]))
    retrained = result["predictions"]
    best = max((retrained[m]["retrained"][0] for m in ("fnn", "cnn")), key=lambda top: top["probability"])
    return jsonify(estimated=best["digit"])


def __getattr__(name: str) -> Flask:
    """`main.app` for gunicorn (`main:app`), built on first access rather than at import,
    so that tests and tools can import this module without loading models or opening storage."""
    if name != "app":
        raise AttributeError(name)
    globals()["app"] = create_app()
    return globals()["app"]


if __name__ == "__main__":
    # `python main.py`: Flask's development server on PORT (default 5000), reachable from this machine only.
    # Deployments run gunicorn (the Procfile); scripts/run.sh runs that command locally.
    development = Config.from_env()
    create_app(development).run(host="127.0.0.1", port=development.port)
