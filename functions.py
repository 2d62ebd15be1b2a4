"""The service's functions (the layout's entry point): decode and validate a drawing, preprocess it the MNIST
way, augment it, the four models' top-3 and the answer rule. They live in the package, by layer:

- livedigits/pipeline/drawings.py: decode, validate, preprocess, augment (pure functions over arrays);
- livedigits/pipeline/answers.py: the top-3 and the answer rule;
- livedigits/serving/server.py: predicting with all four models, and storing a labelled drawing;
- livedigits/learning/: training (one SGD step per label) and persisting what is learned.

This module names the pipeline's functions in one place, for scripts and notebooks.
"""

from __future__ import annotations

from livedigits.errors import (
    InputError,
    empty_drawing,
)
from livedigits.pipeline.answers import (
    CANT_RECOGNIZE,
    legacy_top3,
    select_answer,
    to_pixels,
    top_k,
)
from livedigits.pipeline.drawings import (
    ACCEPTED_FORMATS,
    AUGMENT_ANGLES,
    AUGMENT_SCALES,
    DATA_URL,
    DIGIT_SIZE,
    INK_THRESHOLD,
    MAX_IMAGE_SIDE,
    MIN_INK_PIXELS,
    ROTATIONS_PER_SCALE,
    affine,
    augment,
    augment_plan,
    centre_by_mass,
    decode_digit,
    decode_drawing,
    decode_image,
    digit_from_pixels,
    digit_from_png,
    digit_from_text,
    digit_of,
    digit_to_text,
    encode_png,
    flatten,
    ink_from_grey,
    preprocess,
    quantise,
    stored_digit,
)
from livedigits.pipeline.pen import BOX_SIZE, PEN_WIDTH, with_mnist_pen
from livedigits.state.figures import (
    MODELS,
    VARIANTS,
)
from livedigits.web.inputs import (
    parse_label,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "AUGMENT_ANGLES",
    "AUGMENT_SCALES",
    "BOX_SIZE",
    "CANT_RECOGNIZE",
    "DATA_URL",
    "DIGIT_SIZE",
    "INK_THRESHOLD",
    "MAX_IMAGE_SIDE",
    "MIN_INK_PIXELS",
    "MODELS",
    "PEN_WIDTH",
    "ROTATIONS_PER_SCALE",
    "VARIANTS",
    "InputError",
    "affine",
    "augment",
    "augment_plan",
    "centre_by_mass",
    "decode_digit",
    "decode_drawing",
    "decode_image",
    "digit_from_pixels",
    "digit_from_png",
    "digit_from_text",
    "digit_of",
    "digit_to_text",
    "empty_drawing",
    "encode_png",
    "flatten",
    "ink_from_grey",
    "legacy_top3",
    "parse_label",
    "preprocess",
    "quantise",
    "select_answer",
    "stored_digit",
    "to_pixels",
    "top_k",
    "with_mnist_pen",
]
