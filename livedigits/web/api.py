"""The JSON API: predict, train (and undo), internals, stats, the latest drawings and their images."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, url_for

from livedigits.errors import InputError
from livedigits.serving.stats import build_stats
from livedigits.web.current import server
from livedigits.web.inputs import json_body, parse_digit, parse_drawing, parse_label, parse_strokes
from livedigits.web.limits import limited, unlimited

api = Blueprint("api", __name__)


@api.post("/api/predict")
@limited("predict")
def predict() -> Response:
    digit = parse_digit(json_body().get("image"))
    return jsonify(server().predict(digit))


@api.post("/api/train")
@limited("train")
def train() -> tuple[Response, int]:
    """A label's trip: parse here, then Server.train stores it, hands it to the learner and waits for it."""
    body = json_body()
    label = parse_label(body.get("label"))
    strokes = parse_strokes(body.get("strokes"))
    digit, png = parse_drawing(body.get("image"))
    answer, learned = server().train(digit, png, label, strokes, source="api/train")
    return jsonify(answer), 200 if learned else 202


@api.post("/api/undo")
@limited("train")
def undo_train() -> Response:
    """Take back one's own drawing with the capability /api/train answered (no admin token)."""
    return jsonify(server().undo(json_body().get("undo_token")))


@api.post("/api/internals")
@limited("predict")
def internals() -> Response:
    digit = parse_digit(json_body().get("image"))
    return jsonify(server().internals(digit))


@api.get("/api/stats")
@unlimited("fixed-size figures the learner published, read from memory: the models page polls it")
def stats() -> Response:
    return jsonify(build_stats(server(), image_url=sample_url))


@api.get("/api/samples/recent")
@unlimited("a fixed-size list the learner published, read from memory: the models page polls it")
def recent_samples() -> Response:
    samples = [{**s, "image_url": sample_url(s["sample_id"])} for s in server().recent_samples()]
    return jsonify(samples=samples)


@api.get("/api/samples/<int:sample_id>.png")
@unlimited("the models page shows up to 60 at once, and browsers cache them for a day")
def sample_image(sample_id: int) -> Response:
    try:
        png = server().drawing(sample_id)
    except KeyError:
        raise InputError("not_found", f"There is no drawing {sample_id}.", 404) from None
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400"})


def sample_url(sample_id: str) -> str:
    return url_for("api.sample_image", sample_id=int(sample_id))
