"""A store filled the way users fill it, for the dataset's export and migration tests (app and command line)."""

from __future__ import annotations

from pathlib import Path

from drawings import stroke_canvas, to_data_url

import main
from livedigits.config import Config
from livedigits.state.journal import Entry, Journal
from livedigits.state.storage import LocalStorage

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))

SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))

STROKES_OF_ONE = [[[140, 40, 0], [140, 240, 180]]]


def fill(store: Path, admin_token: str | None = None):
    """A store with three trained drawings (one with strokes), one collected, a reset and a damaged entry.
    The app is main's create_app's, which the tests' fixture tracks and closes."""
    config = Config(storage_url=str(store), sync_interval=0.0, checkpoint_every=2, admin_token=admin_token)
    app = main.create_app(config)
    client = app.test_client()
    for body in (
        {"image": ONE, "label": 1, "strokes": STROKES_OF_ONE},
        {"image": SEVEN, "label": 7},
    ):
        assert client.post("/api/train", json=body).status_code == 200
    assert client.post("/hook", data={"imageBase64": SEVEN, "digit": "7"}).status_code == 200
    app.extensions["digits"].reset()
    Journal(LocalStorage(store)).try_append(5, Entry("train", 3, "drawings/gone.png"))  # its drawing is lost
    assert client.post("/api/train", json={"image": ONE, "label": 1}).status_code == 200
    app.extensions["learner"].flush_checkpoints()
    return app
