"""The digit service: decode and validate, preprocess the MNIST way, augment, predict, answer, train.

The functions at the top are pure (arrays in, arrays out: no disk, no globals, no printing).
`DigitService`, at the bottom, is the one object the app factory builds around them.

Array convention everywhere: float32, shape (n, 28, 28) or (28, 28), ink 1.0 on background 0.0.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import re
import threading
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from config import Config
from conv_net import CNN, JointPredictor, state_from_bytes, state_to_bytes
from digitness import Detector
from journal import Entry, Journal
from storage import StorageError, open_storage
from two_layer_net import FNN

logger = logging.getLogger(__name__)

DIGIT_SIZE = 28
BOX_SIZE = 20  # MNIST: each digit scaled to fit a 20x20 box, then centred by mass in 28x28
MAX_IMAGE_SIDE = 4096  # pixels; a canvas is far smaller, anything larger is a decompression bomb
INK_THRESHOLD = 0.2  # a pixel at least this dark (0..1) counts as ink when cropping
MIN_INK_PIXELS = 4  # fewer inked pixels than this is an empty canvas (or a stray tap)
ACCEPTED_FORMATS = {"PNG", "JPEG"}
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)

# The original recipe: 4 resizes x 6 rotations drawn from -30..25 degrees in steps of 5 = 24 views.
AUGMENT_SCALES = (0.8, 0.9, 1.0, 1.1)  # boxes of 16, 18, 20 and 22 pixels
AUGMENT_ANGLES = tuple(range(-30, 30, 5))
ROTATIONS_PER_SCALE = 6


class InputError(ValueError):
    """A request the service refuses: `code` names it for clients, `status` is its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def empty_drawing() -> InputError:
    return InputError("empty_drawing", "Nothing is drawn: draw a digit first.", 422)


# --- decoding -------------------------------------------------------------------------------------


def decode_image(text: object) -> Image.Image:
    """Decode a data URL or bare base64 string of a PNG or JPEG into a loaded single-frame image.

    Raises InputError for anything else: not a string, malformed base64, another image type,
    bytes that are not an image, a truncated file, an animation, or a side over MAX_IMAGE_SIDE pixels.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("missing_field", "Send the drawing as a base64 PNG or JPEG in 'image'.")
    text = text.strip()
    match = DATA_URL.match(text)
    if match:
        mime = (match.group("mime") or "").lower()
        if mime not in ("image/png", "image/jpeg", "image/jpg"):
            raise InputError(
                "unsupported_image", f"Only PNG and JPEG drawings are accepted, not {mime or 'this'}.", 415
            )
        text = text[match.end() :]
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)  # line breaks allowed; a regex costs 0.1 ms
    except (binascii.Error, ValueError):
        raise InputError("invalid_base64", "The drawing is not valid base64.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            if image.format not in ACCEPTED_FORMATS:
                raise InputError(
                    "unsupported_image", f"Only PNG and JPEG drawings are accepted, not {image.format}.", 415
                )
            # Each side, not just the area: a 16,000,000x1 strip is within the area, and costs seconds.
            if max(image.width, image.height) > MAX_IMAGE_SIDE:
                raise InputError(
                    "image_too_large", f"The drawing is {image.width}x{image.height} pixels; at most 4096x4096.", 413
                )
            if getattr(image, "n_frames", 1) != 1:
                raise InputError("unsupported_image", "Animated or multi-frame images are not accepted.", 415)
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("image_too_large", "The drawing decodes to too many pixels.", 413) from None
    except (OSError, SyntaxError, ValueError):
        raise InputError("not_an_image", "The data is not a readable PNG or JPEG image.") from None
    return image


def flatten(image: Image.Image) -> Image.Image:
    """Greyscale 'L' image with any transparency composited onto white (a canvas's background)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


def encode_png(grey: Image.Image) -> bytes:
    """Lossless PNG of a greyscale image: what the log stores, decoding back to the same pixels."""
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def ink_from_grey(grey: np.ndarray) -> np.ndarray:
    """uint8 greyscale (H, W) -> float32 ink in 0..1, ink bright.

    The background is read from the border: dark ink on a light canvas (the usual case) is
    inverted, bright ink on a dark canvas is kept as it is.
    """
    values = grey.astype(np.float32) / 255.0
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    return 1.0 - values if np.median(border) > 0.5 else values


# --- preprocessing --------------------------------------------------------------------------------


def preprocess(ink: np.ndarray) -> np.ndarray:
    """Make a digit the way MNIST's were made: (H, W) ink in 0..1 -> (28, 28) float32.

    Crop to the ink, scale the longer side to 20 pixels keeping the aspect ratio (antialiased),
    and place it so its centre of mass sits at the centre of the 28x28 field.
    Raises InputError("empty_drawing") when there is (next to) no ink.
    """
    mask = ink >= INK_THRESHOLD
    if mask.sum() < MIN_INK_PIXELS:
        raise empty_drawing()
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    height, width = crop.shape
    scale = BOX_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.LANCZOS, reducing_gap=None))
    box = np.clip(box, 0.0, 1.0)
    return centre_by_mass(box)


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Paste a (h, w) box (h, w <= 28) into 28x28 with its centre of mass moved to the centre."""
    height, width = box.shape
    centre_y, centre_x = ndimage.center_of_mass(box) if box.sum() > 0 else (height / 2, width / 2)
    top = int(np.clip(round(DIGIT_SIZE / 2 - centre_y), 0, DIGIT_SIZE - height))
    left = int(np.clip(round(DIGIT_SIZE / 2 - centre_x), 0, DIGIT_SIZE - width))
    digit = np.zeros((DIGIT_SIZE, DIGIT_SIZE), dtype=np.float32)
    digit[top : top + height, left : left + width] = box
    return digit


def decode_digit(text: object) -> np.ndarray:
    """The one path from a client's base64 to what models see: the (28, 28) digit."""
    return digit_of(flatten(decode_image(text)))


def decode_drawing(text: object) -> tuple[np.ndarray, bytes]:
    """A drawing to keep: its (28, 28) digit and the PNG to store (encoding costs ~1 ms: only when storing)."""
    grey = flatten(decode_image(text))
    return digit_of(grey), encode_png(grey)


def digit_from_png(png: bytes) -> np.ndarray:
    """A stored drawing back to the (28, 28) digit, exactly as `decode_drawing` made it."""
    return digit_of(flatten(Image.open(io.BytesIO(png))))


def stored_digit(png: bytes | None) -> np.ndarray | None:
    """A stored drawing's digit, or None if it is missing or unreadable: it teaches nothing, on every process alike."""
    if png is None:
        return None
    try:
        return digit_from_png(png)
    except (InputError, OSError, ValueError):
        return None


def digit_of(grey: Image.Image) -> np.ndarray:
    return preprocess(ink_from_grey(np.asarray(grey)))


def digit_from_pixels(pixels: object) -> np.ndarray:
    """784 ints 0..255 (row-major 28x28, ink bright on dark) -> preprocessed (28, 28) digit."""
    if not isinstance(pixels, list) or len(pixels) != DIGIT_SIZE * DIGIT_SIZE:
        raise InputError("invalid_input", "'input' must be a list of 784 integers 0..255.")
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 255 for p in pixels):
        raise InputError("invalid_input", "'input' must be a list of 784 integers 0..255.")
    return preprocess(np.array(pixels, dtype=np.float32).reshape(DIGIT_SIZE, DIGIT_SIZE) / 255.0)


# --- augmentation ---------------------------------------------------------------------------------


def affine(
    digit: np.ndarray, angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Rotate (degrees, counter-clockwise), scale and shift a (28, 28) digit about its centre."""
    theta = np.deg2rad(angle)
    # affine_transform maps output coordinates to input ones, hence the inverse rotation and scale.
    inverse = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array([DIGIT_SIZE / 2, DIGIT_SIZE / 2])
    offset = centre - inverse @ (centre + np.asarray(shift))
    return ndimage.affine_transform(digit, inverse, offset=offset, order=1, mode="constant", cval=0.0)


def augment_plan(rng: np.random.Generator) -> list[tuple[float, float]]:
    """The 24 (scale, angle) pairs of one augmentation: 6 distinct angles drawn for each of 4 scales."""
    return [
        (scale, float(angle))
        for scale in AUGMENT_SCALES
        for angle in rng.choice(AUGMENT_ANGLES, size=ROTATIONS_PER_SCALE, replace=False)
    ]


def augment(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return 24 views (4 resizes x 6 rotations) of one (28, 28) digit: (24, 28, 28) float32.

    One drawing makes a noisy SGD step; two dozen plausible variants make a steadier one.
    The caller passes rng so that tests, benchmarks and replicas replaying the log repeat exactly.
    """
    return np.stack([affine(digit, angle, scale) for scale, angle in augment_plan(rng)]).astype(np.float32)


# --- answers ----------------------------------------------------------------------------------------


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


def parse_label(value: object) -> int:
    """A label from JSON or a form field: an integer 0..9 (or its decimal string)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"\s*\d\s*", value):
        value = int(value)
    if value is None or value == "":
        raise InputError("missing_field", "Send the digit's label (0-9) in 'label'.")
    if not isinstance(value, int) or not 0 <= value <= 9:
        raise InputError("invalid_label", "The label must be an integer from 0 to 9.")
    return value


# --- online learning --------------------------------------------------------------------------------
# One SGD step per labelled drawing, on a batch of the drawing's 24 augmented views, past user drawings
# replayed from memory (a correction is not undone by the next person) and MNIST digits shipped in
# models/replay.npz (the models do not forget MNIST). bench/online.py measured the alternatives.
# Everything is seeded by the entry number: processes applying the same log hold the same state.


@dataclass(frozen=True)
class Recipe:
    # MNIST digits mixed into every step, per model: the main guard against forgetting MNIST.
    # The FNN's steps cost microseconds, so it takes many; the CNN's cost grows with the batch.
    fnn_mnist_replay: int = 768
    cnn_mnist_replay: int = 64
    user_replay: int = 32  # past user drawings mixed in: what other people taught stays learned
    # Rates of the one SGD step per drawing (momentum 0.5, from the models' configs); bench/online.py:
    # higher rates learn a hand faster but forget MNIST, lower ones barely move on a 600-drawing stream.
    fnn_learning_rate: float = 0.05
    cnn_learning_rate: float = 0.02
    user_memory: int = 1000  # past user drawings kept to replay from (~0.8 MB)


def load_replay(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The shipped MNIST sample: (n, 28, 28) uint8 preprocessed digits, (n,) labels (none if absent)."""
    if not path.exists():
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    with np.load(path) as data:
        return data["images"], data["labels"].astype(np.int64)


def quantise(digit: np.ndarray) -> np.ndarray:
    # Memory holds uint8 so that a checkpointed memory and a replayed one are bit-identical.
    return np.rint(np.clip(digit, 0, 1) * 255).astype(np.uint8)


class Learner:
    """The retrained FNN and CNN and the memory of user drawings they replay from."""

    def __init__(self, fnn: FNN, cnn: CNN, replay: tuple[np.ndarray, np.ndarray], recipe: Recipe = Recipe()):
        self.fnn = fnn
        self.cnn = cnn
        self.replay = replay
        self.recipe = recipe
        self.memory: deque[tuple[np.ndarray, int]] = deque(maxlen=recipe.user_memory)
        cnn.set_learning_rate(recipe.cnn_learning_rate)

    @property
    def models(self) -> dict:
        return {"fnn": self.fnn, "cnn": self.cnn}

    def batch(self, number: int, digit: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
        """Entry `number`'s batch: (n, 28, 28) float32 images and (n,) labels, ordered
        [24 augmented views, replayed user drawings, replayed MNIST digits] so each model takes a prefix."""
        rng = np.random.default_rng(number)
        images, labels = [augment(digit, rng)], [np.full(24, label)]
        if self.recipe.user_replay and self.memory:
            picks = rng.choice(len(self.memory), min(self.recipe.user_replay, len(self.memory)), replace=False)
            images.append(np.stack([self.memory[i][0] for i in picks]) / np.float32(255))
            labels.append(np.array([self.memory[i][1] for i in picks]))
        replay_images, replay_labels = self.replay
        n_mnist = min(max(self.recipe.fnn_mnist_replay, self.recipe.cnn_mnist_replay), len(replay_labels))
        if n_mnist:
            picks = rng.choice(len(replay_labels), n_mnist, replace=False)
            images.append(replay_images[picks] / np.float32(255))
            labels.append(replay_labels[picks])
        return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int64)

    def learn(self, number: int, digit: np.ndarray, label: int) -> None:
        """One SGD step of both models on entry `number`'s batch, then remember the drawing."""
        images, labels = self.batch(number, digit, label)
        n_mnist = len(labels) - 24 - min(self.recipe.user_replay, len(self.memory))
        fnn_size = len(labels) - n_mnist + min(self.recipe.fnn_mnist_replay, n_mnist)
        cnn_size = len(labels) - n_mnist + min(self.recipe.cnn_mnist_replay, n_mnist)
        self.fnn.train_step(images[:fnn_size], labels[:fnn_size], learning_rate=self.recipe.fnn_learning_rate)
        self.cnn.train_step(images[:cnn_size], labels[:cnn_size])
        self.memory.append((quantise(digit), label))

    def take_models(self, models: dict) -> None:
        """Take copies of these models (keeping this CNN object, so its traced functions stay warm)."""
        self.fnn = models["fnn"].copy()
        self.cnn.set_state(*models["cnn"].get_state())

    def load(self, files: dict[str, bytes]) -> None:
        """Become the learner a checkpoint's files hold, keeping this CNN object (its compiled functions stay
        warm, and no model is built). One of DAMAGED, with nothing changed, if the files are damaged."""
        fnn = FNN.from_bytes(files["fnn.npz"])
        _, *cnn_state = state_from_bytes(files["cnn.npz"])
        memory = read_memory(files["memory.npz"])
        self.cnn.set_state(*cnn_state)  # checks every shape before it assigns anything
        self.fnn = fnn
        self.memory.clear()
        self.memory.extend(memory)

    def memory_bytes(self) -> bytes:
        buffer = io.BytesIO()
        images = np.stack([d for d, _ in self.memory]) if self.memory else np.zeros((0, 28, 28), np.uint8)
        np.savez(buffer, images=images, labels=np.array([label for _, label in self.memory], dtype=np.int64))
        return buffer.getvalue()


def read_memory(data: bytes) -> list[tuple[np.ndarray, int]]:
    """The (uint8 digit, label) pairs `Learner.memory_bytes` wrote."""
    with np.load(io.BytesIO(data)) as arrays:
        return list(zip(arrays["images"], arrays["labels"].tolist(), strict=True))


# --- the service ------------------------------------------------------------------------------------

MODELS = ("fnn", "cnn")
VARIANTS = ("original", "retrained")
# What reading a damaged checkpoint raises: a bad zip, bad JSON, a missing file, arrays that do not load.
DAMAGED = (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile)
RECENT = 100  # "recent" accuracy is over this many of the latest labelled drawings
RECENT_SAMPLES = 48  # drawings listed on the models page
HISTORY_POINTS = 200  # points in the accuracy-by-version history
# A retrained model whose recent accuracy falls this far under its original's is flagged (poisoning).
DEGRADED_MARGIN = 0.15
DEGRADED_MIN_SCORED = 30


@dataclass
class Score:
    """One labelled drawing as every model saw it before learning from it (progressive validation)."""

    version: int
    label: int
    predicted: dict[str, int]  # "fnn.original" -> digit


def to_pixels(digit: np.ndarray) -> list[list[int]]:
    """(28, 28) 0..1 floats -> rows of ints 0..255, for showing clients what the models saw."""
    return np.rint(np.clip(digit, 0, 1) * 255).astype(int).tolist()


def windowed_history(scores: list[Score], window: int = RECENT, points: int = HISTORY_POINTS) -> list[dict]:
    """Each model's accuracy over the `window` drawings before each version, at most `points` versions."""
    if not scores:
        return []
    names = [f"{m}.{v}" for m in MODELS for v in VARIANTS]
    hits = np.array([[s.predicted.get(n) == s.label for n in names] for s in scores], dtype=float)
    cumulative = np.vstack([np.zeros(len(names)), np.cumsum(hits, axis=0)])
    picks = np.unique(np.linspace(0, len(scores) - 1, min(points, len(scores))).round().astype(int))
    history = []
    for i in picks:
        start = max(0, i + 1 - window)
        accuracy = (cumulative[i + 1] - cumulative[start]) / (i + 1 - start)
        history.append(
            {
                "model_version": scores[i].version,
                **{n: round(float(a), 4) for n, a in zip(names, accuracy, strict=True)},
            }
        )
    return history


class DigitService:
    """Four models over one log of labelled drawings; safe to call from many threads.

    The retrained models are a function of the originals and the log: entry n is applied as one
    SGD step on 24 views augmented with a generator seeded by n. A lock serialises applying entries
    and predicting, so a prediction never sees half-updated weights.
    """

    def __init__(
        self,
        config: Config,
        journal: Journal,
        fnn: FNN,
        cnn: CNN,
        replay: tuple[np.ndarray, np.ndarray],
        metrics: dict,
        detector: Detector | None = None,
    ):
        self.config = config
        self.detector = detector  # refuses drawings that are not digits; None answers every drawing
        self.journal = journal
        self.original = {"fnn": fnn, "cnn": cnn}
        self.learner = Learner(fnn.copy(), cnn.copy(), replay)
        self.metrics = metrics
        # Checkpoints are only valid for the originals, replay sample and recipe they were made with.
        made_from = fnn.to_bytes() + cnn.to_bytes() + replay[0].tobytes() + replay[1].tobytes()
        self.fingerprint = hashlib.sha256(made_from + repr(self.learner.recipe).encode()).hexdigest()
        self.version = 0
        self.label_counts = [0] * 10
        self.scores: list[Score] = []
        self.recent: deque[dict] = deque(maxlen=RECENT_SAMPLES)
        # Writers (applying entries, training) hold _lock; readers never wait for them. Readers use a
        # published snapshot of the retrained models, which a writer refreshes in about a millisecond.
        self._lock = threading.RLock()
        self._serving = ReadWriteLock()
        self._served_fnn = self.learner.fnn.copy()
        self._served_cnn = cnn.copy()
        # Both CNNs in one TensorFlow call per prediction: each call costs ~0.3 ms of dispatch by itself.
        self._served_cnns = JointPredictor([cnn, self._served_cnn])
        self._learner_cnns = JointPredictor([cnn, self.learner.cnn])  # scoring before a step
        self._served_version = 0
        self._served_health: dict = {"status": "ok", "model_version": 0, "degraded": []}
        self._last_sync = 0.0
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

    @classmethod
    def open(cls, config: Config) -> DigitService:
        """Load the shipped models once, restore the newest usable checkpoint, replay the rest."""
        journal = Journal(open_storage(config.storage_url, config.s3_endpoint_url))
        metrics_path = config.models_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        fnn, cnn = FNN.load(config.models_dir / "fnn.npz"), CNN.load(config.models_dir / "cnn.npz")
        detector_path = config.models_dir / "digitness.npz"
        detector = Detector.load(detector_path) if detector_path.exists() else None
        replay = load_replay(config.models_dir / "replay.npz")
        service = cls(config, journal, fnn, cnn, replay, metrics, detector)
        service._restore()
        service.sync(force=True)
        service._publish()
        return service

    # --- reading ---

    def predict(self, digit: np.ndarray) -> dict:
        """All four models' top-3 for one (28, 28) digit, and the answer rule's verdict."""
        self.sync_quietly()
        return self._read(digit)

    def _read(self, digit: np.ndarray) -> dict:
        """What the served models say of `digit` now: the answer rule's verdict and each model's top-3."""
        with self._serving.reading():
            probs = self._probabilities(digit, self._served_fnn, self._served_cnns)
            version = self._served_version
        is_digit = self.detector is None or self.detector.is_digit(digit)
        answer, message = select_answer(probs["fnn.retrained"], probs["cnn.retrained"], is_digit)
        return {
            "answer": None if answer is None else str(answer),  # DESIGN.md's contract: "7" or null
            "message": message,
            "model_version": version,
            "predictions": self._shape(probs),
            "preprocessed": to_pixels(digit),
        }

    def internals(self, digit: np.ndarray, channels: int = 16) -> dict:
        """What the retrained models compute inside for one digit: FNN hidden units, CNN feature maps."""
        self.sync_quietly()
        with self._serving.reading():  # the served snapshot, like predict: never waits for a training step
            hidden = self._served_fnn.hidden_activations(digit[None])[0]
            maps = self._served_cnn.feature_maps(digit[None])
            version = self._served_version
        layers = []
        for name, activation in maps:
            activation = activation[0][..., :channels]
            peak = float(activation.max()) or 1.0
            pixels = np.rint(activation / peak * 255).astype(int)
            layers.append({"name": name, "shape": list(activation.shape), "maps": np.moveaxis(pixels, -1, 0).tolist()})
        peak = float(hidden.max()) or 1.0
        return {
            "model_version": version,
            "preprocessed": to_pixels(digit),
            "fnn_hidden": [round(float(h) / peak, 4) for h in hidden],
            "cnn_layers": layers,
        }

    def _probabilities(self, digit: np.ndarray, fnn: FNN, cnns: JointPredictor) -> dict[str, np.ndarray]:
        """Each model's (10,) probabilities: the original FNN, `fnn`, and the original and retrained CNN."""
        batch = digit[None]
        cnn_original, cnn_retrained = cnns(batch)
        return {
            "fnn.original": self.original["fnn"].predict_proba(batch)[0],
            "cnn.original": cnn_original[0],
            "fnn.retrained": fnn.predict_proba(batch)[0],
            "cnn.retrained": cnn_retrained[0],
        }

    @staticmethod
    def _shape(probs: dict[str, np.ndarray]) -> dict:
        return {model: {variant: top_k(probs[f"{model}.{variant}"]) for variant in VARIANTS} for model in MODELS}

    def stats(self) -> dict:
        """Samples per label, model version, each model's accuracy on held-out and user drawings,
        accuracy history by model version, and flags for retrained models doing worse than originals."""
        self.sync_quietly()
        with self._lock:
            scores = list(self.scores)
            counts = list(self.label_counts)
            version = self.version
        accuracy = {}
        for model in MODELS:
            accuracy[model] = {}
            for variant in VARIANTS:
                name = f"{model}.{variant}"
                hits = [s.predicted.get(name) == s.label for s in scores]
                recent = hits[-RECENT:]
                held_out = self.metrics.get("models", {}).get(model, {}).get("accuracy")
                accuracy[model][variant] = {
                    "t10k": held_out if variant == "original" else None,
                    "prequential": sum(hits) / len(hits) if hits else None,
                    "recent": sum(recent) / len(recent) if recent else None,
                    "n_scored": len(hits),
                }
        return {
            "model_version": version,
            "samples": {"total": sum(counts), "per_label": {str(d): c for d, c in enumerate(counts)}},
            "accuracy": accuracy,
            "degraded": degraded_models(accuracy),
            "history": windowed_history(scores),
            "confusion": {m: self.metrics.get("models", {}).get(m, {}).get("confusion_matrix") for m in MODELS},
        }

    def health(self) -> dict:
        """Status, served model version, and degraded retrained models: no lock, no storage."""
        return self._served_health

    def recent_samples(self) -> list[dict]:
        """The latest labelled drawings, newest first."""
        self.sync_quietly()
        with self._lock:
            return list(reversed(self.recent))

    def drawing(self, sample_id: int) -> bytes:
        """The stored PNG of log entry `sample_id`; KeyError if there is none."""
        entry = self.journal.read(sample_id)
        png = self.journal.drawing(entry) if entry is not None else None
        if png is None:
            raise KeyError(sample_id)
        return png

    # --- writing ---

    def train(
        self, digit: np.ndarray, png: bytes, label: int, strokes: list | None = None, source: str = "api"
    ) -> dict:
        """Store a labelled drawing durably, apply it to the retrained models, return what they now say."""
        number = self._append(Entry("train", label, self.journal.store_drawing(png), source, strokes=strokes), digit)
        return {"sample_id": f"{number:010d}", **self._read(digit)}

    def collect(self, png: bytes, label: int, source: str) -> str:
        """Store a labelled drawing without learning from it; returns its image's file name."""
        image = self.journal.store_drawing(png)
        self._append(Entry("collect", label, image, source))
        return image.rsplit("/", 1)[-1]

    def reset(self, source: str = "admin") -> int:
        """Make the retrained models the originals again, for every process; returns the new version."""
        return self._append(Entry("reset", source=source))

    def rollback(self, target: int, source: str = "admin") -> int:
        """Make the retrained models what they were at version `target`, for every process."""
        with self._lock:
            self.sync(force=True)
            if not 0 <= target < self.version:
                raise InputError("invalid_version", f"Roll back to a version from 0 to {self.version - 1}.")
            return self._append(Entry("rollback", source=source, target=target))

    def _append(self, entry: Entry, digit: np.ndarray | None = None) -> int:
        """Claim the next log number for `entry` (create-only), apply it, and return the number."""
        with self._lock:
            for _ in range(1000):
                self.sync(force=True)
                number = self.version + 1
                if self.journal.try_append(number, entry):
                    self._apply(number, entry, digit)
                    self._publish()
                    return number
            raise StorageError("could not claim a log entry: the log keeps moving")

    def sync_quietly(self) -> None:
        """Catch up if nobody else is writing and the store answers; predictions never wait for it."""
        if time.monotonic() - self._last_sync < self.config.sync_interval or not self._lock.acquire(blocking=False):
            return  # recently synced, or a writer is busy and will publish what it applies
        try:
            self.sync()
        except StorageError as error:
            logger.warning("catch-up skipped, storage unavailable: %s", error)
        finally:
            self._lock.release()

    def sync(self, force: bool = False) -> None:
        """Apply entries other processes appended; throttled unless forced (cheap listing)."""
        if not force and time.monotonic() - self._last_sync < self.config.sync_interval:
            return
        with self._lock:
            applied = False
            for number in self.journal.numbers_after(self.version):
                if number != self.version + 1:
                    break  # a gap is a writer mid-claim: wait rather than apply out of order
                self._apply(number, self.journal.read(number))
                applied = True
            self._last_sync = time.monotonic()
            if applied:
                self._publish()

    def _publish(self) -> None:
        """Let readers see the learner's current models (called by writers, under _lock)."""
        fnn = self.learner.fnn.copy()
        scores = self.scores[-RECENT:]
        accuracy = {
            m: {v: {"recent": recent_accuracy(scores, f"{m}.{v}"), "n_scored": len(scores)} for v in VARIANTS}
            for m in MODELS
        }
        with self._serving.writing():
            self._served_cnn.take_weights(self.learner.cnn)
            self._served_fnn = fnn
            self._served_version = self.version
        self._served_health = {"status": "ok", "model_version": self.version, "degraded": degraded_models(accuracy)}

    def _apply(self, number: int, entry: Entry | None, digit: np.ndarray | None = None) -> None:
        """Apply entry `number` live: score it, count it, step the models, advance the version.

        A damaged entry (None) is a no-op that still counts, so every process numbers alike.
        """
        if entry is not None and entry.kind in ("train", "collect"):
            self.label_counts[entry.label] += 1
            self.recent.append(
                {"sample_id": f"{number:010d}", "label": entry.label, "kind": entry.kind, "created": entry.created}
            )
        if entry is not None and entry.kind == "train":
            digit = digit if digit is not None else self._load_digit(entry)
            if digit is not None:
                probs = self._probabilities(digit, self.learner.fnn, self._learner_cnns)
                self.scores.append(Score(number, entry.label, {name: int(p.argmax()) for name, p in probs.items()}))
        self._advance(self.learner, number, entry, digit)
        self.version = number
        if number % self.config.checkpoint_every == 0:
            self._schedule_checkpoint()

    def _load_digit(self, entry: Entry) -> np.ndarray | None:
        return stored_digit(self.journal.drawing(entry))

    def _advance(self, learner: Learner, number: int, entry: Entry | None, digit: np.ndarray | None = None) -> None:
        """Apply entry `number` to `learner` in place: the learning part only."""
        if entry is None or entry.kind == "collect":
            return
        if entry.kind == "reset":
            learner.take_models(self.original)
        elif entry.kind == "rollback":
            if entry.target is not None and 0 <= entry.target < number:
                self._rewind(learner, entry.target)
        elif entry.kind == "train":
            digit = digit if digit is not None else self._load_digit(entry)
            if digit is not None:
                learner.learn(number, digit, entry.label)

    def _rewind(self, learner: Learner, target: int) -> None:
        """Make `learner` what entries 1..target made it: the newest checkpoint up to `target`, then replay.
        In place and from scratch each time, so a retry after a storage error lands on the same state."""
        restored = self._load_checkpoint(learner, max_version=target)
        if restored is None:
            learner.take_models(self.original)
            learner.memory.clear()
        start = 0 if restored is None else restored[0]
        for number in range(start + 1, target + 1):
            self._advance(learner, number, self.journal.read(number))

    # --- checkpoints ---

    def _schedule_checkpoint(self) -> None:
        """Snapshot under the lock (milliseconds); serialise and write in the background."""
        version = self.version
        fnn = self.learner.fnn.copy()
        cnn_config, cnn_state = self.learner.cnn.config, self.learner.cnn.get_state()
        memory = self.learner.memory_bytes()
        state = {
            "version": version,
            "fingerprint": self.fingerprint,
            "label_counts": list(self.label_counts),
            "scores": [asdict(s) for s in self.scores],
            "recent": list(self.recent),
        }

        def write() -> None:
            files = {
                "fnn.npz": fnn.to_bytes(),
                "cnn.npz": state_to_bytes(cnn_config, *cnn_state),
                "memory.npz": memory,
                "state.json": json.dumps(state).encode(),
            }
            try:
                self.journal.write_checkpoint(version, files)
            except StorageError as error:
                logger.warning("checkpoint %d not written: %s", version, error)

        self._checkpointer.submit(write)

    def flush_checkpoints(self) -> None:
        """Wait for checkpoint writes in flight (tests and shutdown)."""
        self._checkpointer.submit(lambda: None).result()

    def _load_checkpoint(self, learner: Learner, max_version: int | None = None) -> tuple[int, dict] | None:
        """Load the newest readable checkpoint made from these originals (at most `max_version`) into
        `learner`; (its version, its state), or None with `learner` untouched. Damaged or foreign ones are skipped."""
        for number in self.journal.checkpoints():
            if max_version is not None and number > max_version:
                continue
            try:
                files = self.journal.read_checkpoint(number)
                state = json.loads(files["state.json"])
                if state["fingerprint"] == self.fingerprint and state["version"] == number:
                    learner.load(files)
                    return number, state
            except DAMAGED as error:
                logger.warning("skipping checkpoint %d: %s", number, error)
        return None

    def _restore(self) -> None:
        """Start from the newest usable checkpoint."""
        restored = self._load_checkpoint(self.learner)
        if restored is None:
            return
        number, state = restored
        self.version = number
        self.label_counts = state["label_counts"]
        self.scores = [Score(**s) for s in state["scores"]]
        self.recent.extend(state.get("recent", []))
        logger.info("restored checkpoint %d", number)


class ReadWriteLock:
    """Many readers at once, or one writer: predictions run in parallel, a model swap excludes them."""

    def __init__(self):
        self._condition = threading.Condition()
        self._readers = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: self._readers == 0)
            yield


def recent_accuracy(scores: list[Score], name: str) -> float | None:
    recent = scores[-RECENT:]
    return sum(s.predicted.get(name) == s.label for s in recent) / len(recent) if recent else None


def degraded_models(accuracy: dict) -> list[str]:
    """Retrained models whose recent accuracy on user drawings is well under their original's."""
    flagged = []
    for model in MODELS:
        original, retrained = accuracy[model]["original"], accuracy[model]["retrained"]
        enough = retrained["n_scored"] >= DEGRADED_MIN_SCORED and original["recent"] is not None
        if enough and retrained["recent"] < original["recent"] - DEGRADED_MARGIN:
            flagged.append(f"{model}.retrained")
    return flagged
