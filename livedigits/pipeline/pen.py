"""One pen for every drawing: strokes thinner than MNIST's narrow pen are redrawn at its width before any model sees
them.

A person who fills a big canvas with a thin line sends strokes that end up a pixel or less wide (and grey) after the
crop and the scale to 20 pixels, which MNIST never had. So the drawing's skeleton, drawn with MNIST's narrow pen
(PEN_WIDTH), is laid under the drawing: a thin stroke becomes exactly that pen, and a stroke at least as wide stays as
it is. Fat strokes are not thinned: a fat pen fills a digit's loops, and a skeleton of a filled loop is a line (an 8
becomes a 1), whereas the blob itself is learnable (livedigits/offline/train.py trains on fat pens). Measured in
docs/measurements.md ("Any pen").
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

BOX_SIZE = 20  # MNIST: each digit scaled to fit a 20x20 box
# MNIST's narrow pens, pixels in the box: t10k's stroke widths (ink area / skeleton length) have median 2.6 and 10th
# percentile 1.9. A quick FNN read MNIST's own digits 0.8 point worse with 2.5 (they were widened), none with 2.0.
PEN_WIDTH = 2.0
SCALE = 2  # the skeleton is found and the pen drawn at twice the box's resolution: a 1-pixel stroke is 2 pixels there
RADIUS = SCALE * PEN_WIDTH / 2


def resized(ink: np.ndarray, longer: int) -> np.ndarray:
    """(h, w) float ink scaled so that its longer side is `longer` pixels, keeping the aspect ratio (antialiased)."""
    height, width = ink.shape
    scale = longer / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.asarray(ink, np.float32), mode="F")
    return np.clip(np.asarray(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=None)), 0.0, 1.0)


def with_mnist_pen(crop: np.ndarray) -> np.ndarray:
    """A cropped drawing's (h, w) ink 0..1 -> its box (longer side BOX_SIZE), every stroke at least PEN_WIDTH wide.

    The box is what it always was (the crop scaled once, antialiased), so a digit drawn with MNIST's pen stays as it
    was; the pen is drawn on a grid of exactly SCALE x the box's, averaged down onto it and kept within the box (where
    a thin stroke's end or edge meets the box, up to half the pen is cut: the box stays 20 pixels for every pen).
    """
    box = resized(crop, BOX_SIZE)
    height, width = box.shape
    work = np.asarray(Image.fromarray(box, mode="F").resize((SCALE * width, SCALE * height), Image.Resampling.BILINEAR))
    # Half the darkest ink, not a fixed level: a hairline drawn large arrives grey.
    mask = work >= 0.5 * min(1.0, float(work.max()))
    pen = np.clip(RADIUS + 0.5 - ndimage.distance_transform_edt(~skeletonize(mask)), 0.0, 1.0)
    return np.maximum(box, pen.reshape(height, SCALE, width, SCALE).mean(axis=(1, 3)))
