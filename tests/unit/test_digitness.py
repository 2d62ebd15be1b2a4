"""Refusing what is not a digit: the shape measures, the detector, the generators, the answer rule, the API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT
from drawings import canvas_of, stroke_canvas, to_data_url

from functions import CANT_RECOGNIZE, decode_digit, digit_of, select_answer
from livedigits.models.digitness import N_SHAPE, Detector, features, shape_measures
from livedigits.offline.nondigits import BENCH_SEED, KINDS, fonts, generate

DETECTOR = ROOT / "models" / "digitness.npz"


def ring() -> np.ndarray:
    yy, xx = np.mgrid[:28, :28]
    radius = np.hypot(yy - 14, xx - 14)
    return ((radius > 5) & (radius < 8)).astype(np.float32)


def test_shape_measures_count_holes_pieces_ends_and_fill():
    holes, pieces, ends = 2, 3, 4
    assert shape_measures(ring())[holes] == pytest.approx(1 / 3)
    bars = np.zeros((28, 28), np.float32)
    bars[4:24, 6:9] = bars[4:24, 18:21] = 1.0
    measures = shape_measures(bars)
    assert measures[pieces] == pytest.approx(1 / 3) and measures[holes] == 0
    assert measures[ends] == pytest.approx(4 / 6)  # each bar's skeleton is a segment: two ends
    disc = (np.hypot(*(np.mgrid[:28, :28] - 14)) < 10).astype(np.float32)
    assert shape_measures(disc)[1] > 0.75 > shape_measures(ring())[1]  # fills its box
    assert not shape_measures(np.zeros((28, 28), np.float32)).any()
    assert features(np.stack([ring(), disc])).shape == (2, 784 + N_SHAPE)


def test_generators_repeat_and_keep_bench_apart():
    for kind in KINDS:
        first, again = generate(kind, 2, "train"), generate(kind, 2, "train")
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))
        bench = generate(kind, 2, "bench")
        assert not np.array_equal(np.asarray(first[0]), np.asarray(bench[0]))
        assert first[0].size == (280, 280) and np.asarray(first[0]).min() < 128  # ink on the canvas
    assert not set(fonts("train")) & set(fonts("bench"))
    with pytest.raises(ValueError):
        generate("dot", 2, "train", start=BENCH_SEED - 1)


def test_answer_rule_refuses_what_is_not_a_digit():
    sure = np.eye(10)[8]
    assert select_answer(sure, sure, is_digit=False) == (None, CANT_RECOGNIZE)
    assert select_answer(sure, sure)[0] == 8


def test_detector_round_trips(tmp_path):
    detector = Detector.load(DETECTOR)
    detector.save(tmp_path / "d.npz")
    loaded = Detector.load(tmp_path / "d.npz")
    probe = np.stack([ring(), np.zeros((28, 28), np.float32)])
    assert loaded.threshold == detector.threshold
    assert np.array_equal(loaded.not_digit_probability(probe), detector.not_digit_probability(probe))


def test_shipped_detector_refuses_non_digits_and_keeps_digits(mnist_test):
    detector = Detector.load(DETECTOR)
    refused = {
        kind: np.mean([not detector.is_digit(digit_of(c)) for c in generate(kind, 20, "bench", start=5000)])
        for kind in ("scribble", "blob", "line")
    }
    assert all(share >= 0.5 for share in refused.values()), refused  # the bench: 75-100% (README)
    digits = np.stack([decode_digit(to_data_url(canvas_of(image))) for image in mnist_test[0][:300]])
    assert (detector.not_digit_probability(digits) > detector.threshold).sum() <= 3


def test_api_answers_null_for_a_scribble_and_a_digit_for_a_digit(client, mnist_test):
    zigzag = [(40, 60), (240, 80), (50, 120), (230, 150), (60, 200), (240, 230), (80, 90), (200, 250)]
    result = client.post("/api/predict", json={"image": to_data_url(stroke_canvas(zigzag, width=26))}).get_json()
    assert result["answer"] is None and result["message"] == CANT_RECOGNIZE
    assert len(result["predictions"]["cnn"]["original"]) == 3  # the models' guesses are still shown
    result = client.post("/api/predict", json={"image": to_data_url(canvas_of(mnist_test[0][0]))}).get_json()
    assert result["answer"] == str(mnist_test[1][0])
