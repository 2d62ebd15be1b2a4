"""The operator's routes (Authorization: Bearer ADMIN_TOKEN): reset, roll back, review, exclude and restore
drawings, export the dataset and the models. One budget for them all, which also slows token guessing, but for
the exports: each builds a zip of megabytes, and has a smaller budget of its own."""

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


@admin.post("/api/admin/reset")
@limited("admin")
def admin_reset() -> Response:
    require_admin()
    return jsonify(model_version=server().reset())


@admin.post("/api/admin/rollback")
@limited("admin")
def admin_rollback() -> Response:
    require_admin()
    target = json_body().get("model_version")
    if not isinstance(target, int) or isinstance(target, bool):
        raise InputError("invalid_version", "Send the version to roll back to as an integer 'model_version'.")
    return jsonify(model_version=server().rollback(target))


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
def admin_exclude() -> Response:
    require_admin()
    return jsonify(server().exclude(sample_ids(json_body().get("sample_ids"))))


@admin.post("/api/admin/restore")
@limited("admin")
def admin_restore() -> Response:
    require_admin()
    return jsonify(server().restore(sample_ids(json_body().get("sample_ids"))))


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
