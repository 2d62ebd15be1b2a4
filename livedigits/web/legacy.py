"""The original apps' clients, answered exactly as they expect (form-encoded, as they sent it)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify

from livedigits.errors import InputError
from livedigits.pipeline.answers import CANT_RECOGNIZE, legacy_top3
from livedigits.pipeline.drawings import digit_from_pixels
from livedigits.web.current import server
from livedigits.web.inputs import form_field, json_body, parse_digit, parse_drawing, parse_label
from livedigits.web.limits import limited

legacy = Blueprint("legacy", __name__)
# The routes the original apps' clients call from their own pages (CORS); the rest of the API is same-origin.
LEGACY_ROUTES = r"^/(hook|hook2|hook3|estimate)$"


@legacy.post("/hook")
@limited("train")
def hook_collect() -> Response:
    label = parse_label(form_field("digit"))
    _, png = parse_drawing(form_field("imageBase64"))
    name = server().collect(png, label, source="hook")
    return Response(f"Image saved successfully with the name {name}", mimetype="text/plain")


@legacy.post("/hook2")
@limited("predict")
def hook_predict() -> Response:
    try:
        digit = parse_digit(form_field("imageBase64"))
    except InputError as error:
        if error.code != "empty_drawing":
            raise
        return Response("Can't predict, when nothing is drawn", mimetype="text/html")
    result = server().predict(digit)
    predictions = result["predictions"]
    answer = {
        "answer": result["answer"] if result["answer"] is not None else CANT_RECOGNIZE,
        "fnn": legacy_top3(predictions["fnn"]["original"]),
        "fnn_t": legacy_top3(predictions["fnn"]["retrained"]),
        "cnn": legacy_top3(predictions["cnn"]["original"]),
        "cnn_t": legacy_top3(predictions["cnn"]["retrained"]),
    }
    # JSON text as text/html, as the original's plain Flask string: its page JSON.parses what jQuery hands it,
    # and jQuery would already have parsed an application/json answer into an object.
    return Response(json.dumps(answer), mimetype="text/html")


@legacy.post("/hook3")
@limited("train")
def hook_train() -> Response:
    label = parse_label(form_field("digit"))
    digit, png = parse_drawing(form_field("imageBase64"))
    _, learned = server().train(digit, png, label, source="hook3")
    if not learned:
        return Response("Stored; learning is pending", status=202, mimetype="text/plain")
    return Response("Trained", mimetype="text/plain")


@legacy.post("/estimate")
@limited("predict")
def estimate() -> Response:
    digit = digit_from_pixels(json_body().get("input"))
    result = server().predict(digit)
    if result["answer"] is not None:
        return jsonify(estimated=int(result["answer"]))
    retrained = result["predictions"]
    best = max((retrained[m]["retrained"][0] for m in ("fnn", "cnn")), key=lambda top: top["probability"])
    return jsonify(estimated=best["digit"])
