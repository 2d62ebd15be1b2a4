"""Refusing what is not a digit: the shape measures, the detector, the generators, the answer rule, the API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT
from drawings import canvas_of, stroke_canvas, to_data_url

from functions import CANT_RECOGNIZE, decode_digit, select_answer
from livedigits.models.digitness import (
    N_NEAR,
    N_OPINIONS,
    N_SHAPE,
    SUBSPACE,
    Detector,
    features,
    opinions,
    remoteness,
    shape_measures,
)
from livedigits.offline.refusal import Originals, family_digits

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
    subspaces = Detector.load(DETECTOR).subspaces
    assert features(np.stack([ring(), disc]), subspaces).shape == (2, 784 + N_SHAPE + N_NEAR)


def test_remoteness_is_small_for_digits_and_large_for_what_no_digit_looks_like(mnist_test):
    subspaces = Detector.load(DETECTOR).subspaces
    assert subspaces.shape == (10, 1 + SUBSPACE, 784)
    digits = np.stack([decode_digit(to_data_url(canvas_of(image))) for image in mnist_test[0][:100]])
    grid = np.zeros((28, 28), np.float32)
    grid[4:24:4, 4:24] = grid[4:24, 4:24:4] = 1.0  # a hatch no generator drew
    near = remoteness(digits, subspaces)[:, 0]
    assert near.shape == (100,) and np.median(near) < remoteness(grid[None], subspaces)[0, 0] / 2


def test_pieces_side_by_side_are_refused_whatever_the_network_says():
    two = np.zeros((28, 28), np.float32)
    two[6:22, 4:9] = two[6:22, 17:23] = 1.0  # "11": two pieces, neither over the other's columns
    five = np.zeros((28, 28), np.float32)
    five[6:9, 10:22] = five[10:22, 8:20] = 1.0  # a 5 drawn in two strokes: the bar overlaps the body's columns
    speck = two.copy()
    speck[6:22, 17:23] = 0
    speck[14, 22] = 1.0  # a stray dot beside a stroke is not a piece that counts
    beside = N_SHAPE - 1
    assert shape_measures(two)[beside] == 1 and shape_measures(five)[beside] == 0 == shape_measures(speck)[beside]
    detector = Detector.load(DETECTOR)
    assert detector.not_digit_probability(two[None], np.ones((1, N_OPINIONS), np.float32))[0] == 1.0
    assert not detector.are_digits(two[None], np.eye(10)[1:2], np.eye(10)[1:2])[0]


def test_opinions_say_how_sure_the_models_are_and_whether_they_agree():
    fnn, cnn = np.array([np.eye(10)[3], np.full(10, 0.1)]), np.array([np.eye(10)[3], np.eye(10)[7]])
    views = opinions(fnn, cnn)
    assert views.shape == (2, N_OPINIONS)
    assert views[0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert views[1, 0] == pytest.approx(0.1) and views[1, 2] == 0 and views[1, 3] == pytest.approx(0.9)


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
    views = opinions(np.full((2, 10), 0.1), np.eye(10)[:2])
    assert np.array_equal(loaded.not_digit_probability(probe, views), detector.not_digit_probability(probe, views))
    with pytest.raises(ValueError, match="opinions"):
        detector.not_digit_probability(probe)


def test_shipped_detector_refuses_non_digits_and_keeps_digits(mnist_test):
    detector = Detector.load(DETECTOR)
    originals = Originals.load(ROOT / "models")
    refused = {
        family: np.mean(refuses(detector, originals, family_digits(family, 20, "bench", start=5000)))
        for family in ("scribble-spiral", "dot", "letter-pen-dejavu-serif", "text-letters", "digits-side-by-side")
    }
    assert all(share >= 0.6 for share in refused.values()), refused  # the bench: 88-100% (docs/measurements.md)
    digits = np.stack([decode_digit(to_data_url(canvas_of(image))) for image in mnist_test[0][:300]])
    assert refuses(detector, originals, digits).sum() <= 3


def refuses(detector: Detector, originals: Originals, digits: np.ndarray) -> np.ndarray:
    inputs = originals.inputs(digits, detector.subspaces, detector.uses_opinions)
    return detector.probability_of(inputs) > detector.threshold


def test_api_answers_null_for_a_scribble_and_a_digit_for_a_digit(client, mnist_test):
    zigzag = [(40, 60), (240, 80), (50, 120), (230, 150), (60, 200), (240, 230), (80, 90), (200, 250)]
    result = client.post("/api/predict", json={"image": to_data_url(stroke_canvas(zigzag, width=26))}).get_json()
    assert result["answer"] is None and result["message"] == CANT_RECOGNIZE
    assert len(result["predictions"]["cnn"]["original"]) == 3  # the models' guesses are still shown
    result = client.post("/api/predict", json={"image": to_data_url(canvas_of(mnist_test[0][0]))}).get_json()
    assert result["answer"] == str(mnist_test[1][0])
