"""POST /api/predict/batch: up to 64 drawings, one result each, in order, what /api/predict answers for it (or the
error it refuses it with); the same limits per drawing, and the rate-limit budget counted per drawing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import create_app
from drawings import canvas_of, stroke_canvas, to_data_url
from PIL import ImageDraw
from test_api import BAD_PREDICTS, ONE, payload_error

from livedigits.config import Config

BATCH = "/api/predict/batch"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Without rate limits: a batch of 64 is more than the default budget of 60 drawings a minute."""
    store = tmp_path_factory.mktemp("batch") / "store"
    return create_app(Config(storage_url=str(store), sync_interval=0.0, rate_limits="off")).test_client()


def probabilities(result: dict) -> np.ndarray:
    """Every top-3 probability of a result, in a fixed order."""
    variants = [tops for model in result["predictions"].values() for tops in model.values()]
    return np.array([top["probability"] for tops in variants for top in tops])


def without_probabilities(result: dict) -> dict:
    predictions = {
        m: {v: [top["digit"] for top in tops] for v, tops in variants.items()}
        for m, variants in result["predictions"].items()
    }
    return {**result, "predictions": predictions}


def test_each_result_is_what_predict_answers_for_it(client, mnist_test):
    digits, _ = mnist_test
    eleven = stroke_canvas([(70, 40), (70, 240)])
    ImageDraw.Draw(eleven).line([(210, 40), (210, 240)], fill="black", width=20)
    images = [to_data_url(canvas_of(digits[i])) for i in range(62)] + [ONE, to_data_url(eleven)]
    response = client.post("/api/predict/batch", json={"images": images})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"model_version", "results"} and len(body["results"]) == 64
    for image, result in zip(images, body["results"], strict=True):
        alone = client.post("/api/predict", json={"image": image}).get_json()
        assert without_probabilities(result) == without_probabilities(alone)  # answer, message, digits, pixels
        np.testing.assert_allclose(probabilities(result), probabilities(alone), atol=1e-5)
        assert result["model_version"] == body["model_version"]
    assert body["results"][-1]["answer"] is None  # "11": pieces side by side are refused


def test_a_bad_drawing_gets_the_error_predict_gives_and_the_rest_their_answers(client):
    bad = [body["image"] for body, _, _ in BAD_PREDICTS if isinstance(body, dict) and "image" in body]
    expected = [code for body, _, code in BAD_PREDICTS if isinstance(body, dict) and "image" in body]
    response = client.post(BATCH, json={"images": [ONE, *bad, ONE]})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [payload_error_of(r) for r in results[1:-1]] == expected
    assert results[0] == results[-1] and results[0]["answer"] == "1"


def payload_error_of(result: dict) -> str:
    assert set(result) == {"error", "message"} and result["message"]
    return result["error"]


@pytest.mark.parametrize(
    "body",
    [{"images": []}, {"images": [ONE] * 65}, {"images": ONE}, {"image": ONE}, {}, [ONE]],
    ids=["empty", "65", "not-a-list", "image-not-images", "no-field", "not-an-object"],
)
def test_a_batch_that_is_not_one_is_refused_whole(client, body):
    response = client.post(BATCH, json=body)
    assert response.status_code == 400 and payload_error(response) in ("invalid_images", "invalid_json")


def test_a_batch_over_the_body_limit_is_refused_whole(client):
    response = client.post(BATCH, json={"images": [ONE, "A" * (3 * 1024 * 1024)]})
    assert response.status_code == 413 and payload_error(response) == "request_entity_too_large"


def test_the_budget_counts_drawings_not_requests(store):
    app = create_app(Config(storage_url=str(store), rate_limits="predict=5/minute"))
    client = app.test_client()
    assert client.post(BATCH, json={"images": [ONE] * 4}).status_code == 200  # 4 of 5
    over = client.post(BATCH, json={"images": [ONE] * 2})  # 6 > 5: refused whole, nothing spent
    assert over.status_code == 429 and payload_error(over) == "too_many_requests"
    assert "each drawing" in over.get_json()["message"]
    assert client.post("/api/predict", json={"image": ONE}).status_code == 200  # the fifth
    assert client.post("/api/predict", json={"image": ONE}).status_code == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert other.post(BATCH, json={"images": [ONE] * 6}).status_code == 429  # more than a whole budget
    assert other.post(BATCH, json={"images": []}).status_code == 400  # refused whole: costs one
    assert other.post(BATCH, json={"images": [ONE] * 4}).status_code == 200
