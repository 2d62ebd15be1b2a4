"""Who sees a drawing's image (/api/samples/<n>.png): the public sees the drawings the learner recorded and no one
took out; the operator sees every drawing, with the token or a link the review signed; ids that cannot exist are a
404 that asks no storage; and the images are cached only as long as that stays true."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import create_app, wait_for_version
from drawings import stroke_canvas, to_data_url

from livedigits.config import Config
from livedigits.web import images

TOKEN = "privacy-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))


def make_app(store, **settings):
    defaults = {"sync_interval": 0.0, "admin_token": TOKEN, "rate_limits": "off"}
    return create_app(Config(storage_url=str(store), **(defaults | settings)))


@pytest.fixture
def client(store):
    return make_app(store).test_client()


def train(client, image: str = ONE, label: int = 1) -> dict:
    response = client.post("/api/train", json={"image": image, "label": label})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def image_of(number: int | str) -> str:
    return f"/api/samples/{int(number)}.png"


def assert_hidden(response, number: int) -> None:
    """A private drawing answers as one that does not exist: the answer tells nothing."""
    assert response.status_code == 404 and response.get_json() == {
        "error": "not_found",
        "message": f"There is no drawing {number}.",
    }


def test_public_drawings_are_cached_briefly_and_revalidated_without_storage(client):
    trained = int(train(client)["sample_id"])
    assert client.post("/hook", data={"imageBase64": SEVEN, "digit": "7"}).status_code == 200  # collected
    wait_for_version(client, 2)
    for number in (trained, 2):
        response = client.get(image_of(number))
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.headers["Cache-Control"] == "public, max-age=60"
        etag = response.headers["ETag"]
        assert etag.startswith(f'"{number}-')
        storage = client.application.extensions["digits"].journal.storage
        storage.get, read = _counting(storage.get)
        again = client.get(image_of(number), headers={"If-None-Match": etag})
        del storage.get
        assert again.status_code == 304 and again.data == b"" and read == []  # one indexed read, no storage
        assert again.headers["ETag"] == etag
    assert client.get(f"/api/samples/{trained:010d}.png").status_code == 200  # as the API spells ids


def test_excluded_and_undone_drawings_are_the_operators_alone(client):
    kept = int(train(client)["sample_id"])
    excluded = int(train(client, SEVEN, 1)["sample_id"])
    undone = train(client, SEVEN, 7)
    etag = client.get(image_of(excluded)).headers["ETag"]
    assert client.post("/api/admin/exclude", json={"sample_ids": [excluded]}, headers=ADMIN).status_code == 200
    assert client.post("/api/undo", json={"undo_token": undone["undo_token"]}).status_code == 200
    for number in (excluded, int(undone["sample_id"])):
        assert_hidden(client.get(image_of(number)), number)
        assert_hidden(client.get(image_of(number), headers={"If-None-Match": etag}), number)
        seen = client.get(image_of(number), headers=ADMIN)
        assert seen.status_code == 200 and seen.mimetype == "image/png"
        assert seen.headers["Cache-Control"] == "private, no-store" and "ETag" not in seen.headers
    assert client.get(image_of(kept)).status_code == 200
    wrong = client.get(image_of(excluded), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    assert client.post("/api/admin/restore", json={"sample_ids": [excluded]}, headers=ADMIN).status_code == 200
    assert client.get(image_of(excluded)).headers["Cache-Control"] == "public, max-age=60"


def test_a_drawing_the_learner_has_not_recorded_is_private(store):
    """A `serve` process with no learner: the drawing is stored and acknowledged (202), not yet recorded."""
    client = make_app(store, role="serve", train_wait=0.1).test_client()
    response = client.post("/api/train", json={"image": ONE, "label": 1})
    assert response.status_code == 202
    number = int(response.get_json()["sample_id"])
    assert_hidden(client.get(image_of(number)), number)
    seen = client.get(image_of(number), headers=ADMIN)
    assert seen.status_code == 200 and seen.headers["Cache-Control"] == "private, no-store"
    assert_hidden(client.get(image_of(number + 1), headers=ADMIN), number + 1)  # beyond the log


def test_the_review_signs_a_short_lived_link_for_each_drawing(store):
    app = make_app(store)
    client = app.test_client()
    number = int(train(client, SEVEN, 1)["sample_id"])
    assert client.post("/api/admin/exclude", json={"sample_ids": [number]}, headers=ADMIN).status_code == 200
    [sample] = client.get("/api/review?excluded=1", headers=ADMIN).get_json()["samples"]
    link = sample["image_url"]
    assert link.startswith(image_of(number) + "?") and "signature=" in link and TOKEN not in link
    seen = client.get(link)  # no header: what an <img> sends
    assert seen.status_code == 200 and seen.headers["Cache-Control"] == "private, no-store"
    with app.test_request_context():
        key = images.link_key()
    past = int(time.time()) - 1
    forged = {
        "tampered": link[:-1] + ("0" if link[-1] != "0" else "1"),
        "for another drawing": link.replace(image_of(number), image_of(number + 1)),
        "expired": f"{image_of(number)}?expires={past}&signature={images.signature(key, number, past)}",
        "no signature": f"{image_of(number)}?expires={past + 600}",
        "unicode digits": f"{image_of(number)}?expires=\u0661\u0662&signature=00",
    }
    for name, url in forged.items():
        refused = client.get(url)
        assert refused.status_code == 403 and refused.get_json()["error"] == "invalid_image_link", name
    other = make_app(store, admin_token="a-new-token").test_client()  # a new token revokes every link
    assert other.get(link).status_code == 403


def test_an_id_that_cannot_exist_is_404_without_asking_storage(client, caplog):
    """0, more than 10 digits (300 of them were a 503 and an ERROR in the log: no such file name), beyond the log,
    and what is no number in ASCII digits."""
    train(client)
    storage = client.application.extensions["digits"].journal.storage
    storage.get, read = _counting(storage.get)
    storage.exists, probed = _counting(storage.exists)
    names = ["0", "00", "12345678901", "9" * 300, "4", "9999999999", "²", "\u0661", "①", "-1", "1.5", "0x1", " 1", "1 "]
    with caplog.at_level(logging.ERROR):
        for name in names:
            for headers in ({}, ADMIN):
                response = client.get(f"/api/samples/{name}.png", headers=headers)
                assert response.status_code == 404 and response.get_json()["error"] == "not_found", name
    assert read == probed == [] and caplog.records == []


def test_images_draw_from_their_own_budget_and_the_token_from_the_admin_one(store):
    client = make_app(store, rate_limits="samples=2/minute;admin=1/minute").test_client()
    number = int(train(client)["sample_id"])
    assert [client.get(image_of(number)).status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/api/predict", json={"image": ONE}).status_code == 200  # other budgets untouched
    # With a token, the admin budget: the token is guessed no faster here than on the admin routes.
    assert [client.get(image_of(number), headers=ADMIN).status_code for _ in range(2)] == [200, 429]
    assert client.get("/api/review", headers=ADMIN).status_code == 429


def _counting(method):
    """The storage's own method, recording each call the test's requests make (the test client runs them on this
    thread; the learner and the snapshot follower ask storage on their own)."""
    calls, requests = [], threading.get_ident()

    def counted(*args, **kwargs):
        if threading.get_ident() == requests:
            calls.append(args)
        return method(*args, **kwargs)

    return counted, calls
