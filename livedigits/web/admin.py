"""The operator's routes (Authorization: Bearer ADMIN_TOKEN): reset, roll back, review, exclude and restore
drawings, export the dataset and the models. One budget for them all, which also slows token guessing, but for
the exports: each builds a zip of megabytes, and has a smaller budget of its own.

A change of what the models learned from (reset, rollback, exclude, restore) is a log entry, durable before the
answer. It is answered 200 once the learner has applied it, or 202 while the learner is busy or catching up (within
Config.answer_within_seconds: Heroku's router gives up at 30), with the version at which it is done."""

from __future__ import annotations

import io

from flask import Blueprint, Response, jsonify, request, send_file

from livedigits.errors import InputError
from livedigits.exports import models as model_export
from livedigits.exports.dataset import export_zip
from livedigits.serving.stats import build_stats
from livedigits.web.current import config, server
from livedigits.web.images import signed_image_url
from livedigits.web.inputs import json_body, parse_label, query_int, query_text, require_admin, sample_ids
from livedigits.web.limits import limited

admin = Blueprint("admin", __name__)

IN_PROGRESS = (
    "Accepted and in progress: the learner is busy or catching up. It is done when /healthz's model_version reaches {}."
)


def answered(change: dict, body: dict) -> tuple[Response, int]:
    """200 with `body` once the learner has applied `change`; 202 while it is still to come, saying how to see it
    done."""
    if change["status"] != "pending":
        return jsonify(body), 200
    return jsonify({**body, "status": "pending", "message": IN_PROGRESS.format(change["model_version"])}), 202


@admin.post("/api/admin/reset")
@limited("admin")
def admin_reset() -> tuple[Response, int]:
    require_admin()
    change = server().reset()
    return answered(change, {"model_version": change["model_version"]})


@admin.post("/api/admin/rollback")
@limited("admin")
def admin_rollback() -> tuple[Response, int]:
    require_admin()
    target = json_body().get("model_version")
    if not isinstance(target, int) or isinstance(target, bool):
        raise InputError("invalid_version", "Send the version to roll back to as an integer 'model_version'.")
    change = server().rollback(target)
    return answered(change, {"model_version": change["model_version"]})


@admin.get("/api/review")
@limited("admin")
def review() -> Response:
    """The drawings most likely mislabelled first; `label`, `source`, `excluded=1`, `offset`, `limit`."""
    require_admin()
    args = request.args
    label = parse_label(args["label"]) if args.get("label") else None
    offset = query_int("offset", 0, 0, 10**9)
    limit = query_int("limit", 50, 1, 200)
    excluded = args.get("excluded", "0") in ("1", "true")
    page = server().review(label, query_text("source"), excluded, offset, limit)
    for sample in page["samples"]:  # the page's <img>s: excluded drawings are private, and an <img> sends no token
        sample["image_url"] = signed_image_url(int(sample["sample_id"]))
    return jsonify(page)


@admin.post("/api/admin/exclude")
@limited("admin")
def admin_exclude() -> tuple[Response, int]:
    require_admin()
    change = server().exclude(sample_ids(json_body().get("sample_ids")))
    return answered(change, change)


@admin.post("/api/admin/restore")
@limited("admin")
def admin_restore() -> tuple[Response, int]:
    require_admin()
    change = server().restore(sample_ids(json_body().get("sample_ids")))
    return answered(change, change)


@admin.get("/api/samples/export")
@limited("export")
def export_samples() -> Response:
    """The collected dataset as a zip (the files `python -m livedigits.exports.dataset export` writes)."""
    require_admin()
    archive = export_zip(server().journal.storage, config().parallel_reads)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name="digits-dataset.zip")


@admin.get("/api/models/export")
@limited("export")
def export_models() -> Response:
    """The retrained models as served now, in one zip (livedigits.exports.models)."""
    require_admin()
    snapshot = server().snapshot  # one reference: every file is this version's, whatever is learned meanwhile
    archive = model_export.models_zip(
        snapshot, build_stats(server(), snapshot), model_export.load_template(), model_export.held_out_file()
    )
    return send_file(io.BytesIO(archive), mimetype="application/zip", as_attachment=True,
                     download_name=f"digits-models-v{snapshot.version}.zip")  # fmt: skip
