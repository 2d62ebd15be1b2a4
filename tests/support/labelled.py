"""Three drawn digits and twelve labels, some of them wrong, and an app that learns them: the database tests'
common ground (in-process and across processes)."""

from __future__ import annotations

from pathlib import Path

from drawings import stroke_canvas, to_data_url

import main
from livedigits.config import Config

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))
ZERO = to_data_url(stroke_canvas([(140, 40), (200, 140), (140, 240), (80, 140), (140, 40)]))
ADMIN = {"Authorization": "Bearer t"}
# Twelve labels, some of them wrong (a 7 labelled 1, a 0 labelled 7): the queue has something to rank.
LABELS = [(ONE, 1), (SEVEN, 1), (SEVEN, 7), (ZERO, 0), (ONE, 1), (ZERO, 7)] * 2


def make_app(store: Path, **settings):
    defaults = {"sync_interval": 0.0, "admin_token": "t", "rate_limits": "off"}
    return main.create_app(  # main's, which the tests' fixture tracks and closes
        Config(storage_url=str(store), **(defaults | settings))
    )


def train_all(client, labels=LABELS) -> None:
    for image, label in labels:
        response = client.post("/api/train", json={"image": image, "label": label})
        assert response.status_code == 200, response.get_json()
