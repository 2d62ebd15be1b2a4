"""What the service answers: the top-3 of a model, the answer rule over the two retrained models, and the
shapes clients are shown (the original apps' strings, the preprocessed pixels)."""

from __future__ import annotations

import numpy as np


def top_k(probs: np.ndarray, k: int = 3) -> list[dict]:
    """(10,) probabilities -> the k most likely digits, most likely first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"digit": int(d), "probability": float(probs[d])} for d in order]


CANT_RECOGNIZE = "Can't recognize this as a digit"


def select_answer(fnn_probs: np.ndarray, cnn_probs: np.ndarray, is_digit: bool = True) -> tuple[int | None, str]:
    """The original app's rule over the two retrained models' (10,) probabilities.

    A drawing that is not a digit (`is_digit`, digitness.Detector's verdict on the drawing) has no
    answer, however sure the models are: they name a digit for anything. Otherwise agreeing top digits
    are the answer; else, if both are under 50% sure, there is no answer; else the more confident
    model's top digit is.
    """
    if not is_digit:
        return None, CANT_RECOGNIZE
    fnn_digit, cnn_digit = int(np.argmax(fnn_probs)), int(np.argmax(cnn_probs))
    fnn_conf, cnn_conf = float(fnn_probs[fnn_digit]), float(cnn_probs[cnn_digit])
    if fnn_digit == cnn_digit:
        return fnn_digit, f"Both models think it is {fnn_digit}."
    if fnn_conf < 0.5 and cnn_conf < 0.5:
        return None, CANT_RECOGNIZE
    if cnn_conf >= fnn_conf:
        return cnn_digit, f"The models disagree; the more confident CNN says {cnn_digit}."
    return fnn_digit, f"The models disagree; the more confident FNN says {fnn_digit}."


def legacy_top3(top: list[dict]) -> list[str]:
    """The original clients' strings: [{"digit": 7, "probability": 0.9312}] -> ["7 (93.12)%"]."""
    return [f"{item['digit']} ({item['probability'] * 100:.2f})%" for item in top]


def to_pixels(digit: np.ndarray) -> list[list[int]]:
    """(28, 28) 0..1 floats -> rows of ints 0..255, for showing clients what the models saw."""
    return np.rint(np.clip(digit, 0, 1) * 255).astype(int).tolist()
