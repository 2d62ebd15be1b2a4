"""models/cnn-keras.json is what Keras writes of the CNN's export model today, in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from livedigits.exports import models as model_export


def test_the_keras_template_is_what_keras_writes(tmp_path):
    """models/cnn-keras.json is what Keras writes of conv_net.build_export_model today (a fresh process)."""
    out = tmp_path / "template.json"
    template = [sys.executable, "-m", "livedigits.exports.models", "--template", "--out", str(out)]
    subprocess.run(template, cwd=ROOT, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    assert without_ids(json.loads(out.read_text())) == without_ids(json.loads(model_export.TEMPLATE.read_text()))


def without_ids(value):
    """A Keras config without its shared-object ids (the id() of an object in the process that wrote it)."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k != "shared_object_id"}
    return [without_ids(v) for v in value] if isinstance(value, list) else value
