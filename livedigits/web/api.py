"""The JSON API: predict, train (and undo), internals, stats, the latest drawings and their images."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, jsonify, request, url_for

from livedigits.errors import InputError
from livedigits.serving.stats import build_stats
from livedigits.serving.visibility import visible_drawing
from livedigits.web.current import server
from livedigits.web.images import asked_by_operator, cache_control
from livedigits.web.inputs import (
    batch_cost,
    batch_images,
    json_body,
    parse_digit,
    parse_drawing,
    parse_label,
    parse_strokes,
    sample_number,
)
from livedigits.web.limits import limited, unlimited

api = Blueprint("api", __name__)


@api.post("/api/predict")
@limited("predict")
def predict() -> Response:
    digit = parse_digit(json_body().get("image"))
    return jsonify(server().predict(digit))


@api.post("/api/predict/batch")
@limited("predict", cost=batch_cost)
def predict_batch() -> Response:
    """Up to 64 drawings: one result each, in order, what /api/predict answers for it or the error it refuses it
    with; the readable ones go through each model in one forward pass."""
    results: list[dict | None] = []
    digits = []
    for image in batch_images(json_body().get("images")):
        try:
            digits.append(parse_digit(image))
            results.append(None)
        except InputError as refused:
            results.append({"error": refused.code, "message": refused.message})
    answers = server().predict_many(np.stack(digits)) if digits else []
    version = answers[0]["model_version"] if answers else server().version  # the one snapshot they were read from
    unread = iter(answers)
    return jsonify(model_version=version, results=[result or next(unread) for result in results])


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


@api.get("/api/samples/<sample_id>.png")
@limited("samples", with_token="admin")
def sample_image(sample_id: str) -> Response:
    """A drawing's PNG: a public one to anyone, any to the operator (livedigits.serving.visibility, web.images);
    404 for the rest alike, so that the answer does not tell a private drawing from none."""
    number = sample_number(sample_id)
    drawing = visible_drawing(server(), number, asked_by_operator(number))
    if drawing is None:
        raise InputError("not_found", f"There is no drawing {number}.", 404)
    headers = {"Cache-Control": cache_control(drawing.public)}
    if drawing.public:
        headers["ETag"] = f'"{drawing.tag}"'
        if request.if_none_match.contains_weak(drawing.tag):
            return Response(status=304, headers=headers)
    try:
        png = server().drawing(number)
    except KeyError:
        raise InputError("not_found", f"There is no drawing {number}.", 404) from None
    return Response(png, mimetype="image/png", headers=headers)


def sample_url(sample_id: str) -> str:
    return url_for("api.sample_image", sample_id=str(int(sample_id)))
