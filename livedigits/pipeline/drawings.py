"""The digit pipeline: decode and validate, preprocess the MNIST way, augment, and the answer rule.

Pure functions (arrays in, arrays out: no disk, no globals, no printing), shared by the two roles built on
them: the learner (livedigits/learning/, applies the log with TensorFlow) and the server (livedigits/serving/,
answers with numpy).

Array convention everywhere: float32, shape (n, 28, 28) or (28, 28), ink 1.0 on background 0.0.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import warnings

import numpy as np
from PIL import Image
from scipy import ndimage

from livedigits.config import Config
from livedigits.errors import InputError, empty_drawing
from livedigits.pipeline.pen import with_mnist_pen

DIGIT_SIZE = 28
MAX_IMAGE_SIDE = 4096  # pixels; a canvas is far smaller, anything larger is a decompression bomb
STRIP_PIXELS = 1 << 18  # composited onto white at a time (1 MB of RGBA), whatever the drawing's size
REDUCING_GAP = 3.0  # box-reduce a large drawing first, leaving LANCZOS 3x to go: alike to the eye, and faster
INK_THRESHOLD = 0.2  # a pixel at least this dark (0..1) counts as ink when cropping
MIN_INK_PIXELS = 4  # fewer inked pixels than this is an empty canvas (or a stray tap)
ACCEPTED_FORMATS = {"PNG", "JPEG"}
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)

# The original recipe: 4 resizes x 6 rotations drawn from -30..25 degrees in steps of 5 = 24 views.
AUGMENT_SCALES = (0.8, 0.9, 1.0, 1.1)  # boxes of 16, 18, 20 and 22 pixels
AUGMENT_ANGLES = tuple(range(-30, 30, 5))
ROTATIONS_PER_SCALE = 6


# --- decoding -------------------------------------------------------------------------------------


def decode_image(text: object, max_pixels: int = Config.max_image_pixels, side: int | None = None) -> Image.Image:
    """Decode a data URL or bare base64 string of a PNG or JPEG into a loaded single-frame image.

    The header is checked before any pixel is decoded: each side at most MAX_IMAGE_SIDE, the area at most
    `max_pixels`. With `side`, a JPEG is decoded straight to greyscale and scaled down by 2, 4 or 8 towards
    fitting in `side` x `side` (its decoder does that for free; a PNG's cannot).
    Raises InputError for anything else: not a string, malformed base64, another image type, bytes that are not
    an image, a truncated file, an animation, or too many pixels (413).
    """
    raw = base64_payload(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            if image.format not in ACCEPTED_FORMATS:
                raise InputError(
                    "unsupported_image", f"Only PNG and JPEG drawings are accepted, not {image.format}.", 415
                )
            check_size(image.width, image.height, max_pixels)
            if getattr(image, "n_frames", 1) != 1:
                raise InputError("unsupported_image", "Animated or multi-frame images are not accepted.", 415)
            if side is not None and image.format == "JPEG":
                image.draft("L", fitted(image.size, side))
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("image_too_large", "The drawing decodes to too many pixels.", 413) from None
    except (OSError, SyntaxError, ValueError):
        raise InputError("not_an_image", "The data is not a readable PNG or JPEG image.") from None
    return image


def base64_payload(text: object) -> bytes:
    """The bytes of a data URL (of a PNG or JPEG) or of bare base64; InputError for anything else."""
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
        return base64.b64decode("".join(text.split()), validate=True)  # line breaks allowed; a regex costs 0.1 ms
    except (binascii.Error, ValueError):
        raise InputError("invalid_base64", "The drawing is not valid base64.") from None


def check_size(width: int, height: int, max_pixels: int) -> None:
    """InputError (413) unless a width x height drawing is within the limits, before it is decoded.

    Each side, not just the area: a 16,000,000x1 strip is within the area, and costs seconds. The area: what
    decoding allocates grows with it (4 bytes a pixel for RGBA), whatever the few kB the file takes.
    """
    if max(width, height) > MAX_IMAGE_SIDE:
        raise InputError(
            "image_too_large",
            f"The drawing is {width}x{height} pixels; each side may be at most {MAX_IMAGE_SIDE}.",
            413,
        )
    if width * height > max_pixels:
        square = math.isqrt(max_pixels)
        raise InputError(
            "image_too_large",
            f"The drawing is {width}x{height} pixels ({width * height:,}); at most {max_pixels:,} pixels "
            f"({square}x{square}) are accepted.",
            413,
        )


def fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) scaled down, keeping the aspect ratio, so that the longer is at most `side`."""
    width, height = size
    if max(width, height) <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def flatten(image: Image.Image) -> Image.Image:
    """Greyscale 'L' image with any transparency composited onto white (a canvas's background).

    A strip of rows at a time: compositing a whole drawing at once holds three RGBA copies of it. An opaque one (what
    a browser's canvas sends: RGBA, every alpha 255) is converted as it is, to the same pixels in a sixth of the time.
    """
    if image.mode == "L":
        return image
    if not has_alpha(image) or (image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema() == (255, 255)):
        return image.convert("L")
    grey = Image.new("L", image.size)
    rows = max(1, STRIP_PIXELS // image.width)
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height))).convert("RGBA")
        white = Image.new("RGBA", strip.size, (255, 255, 255, 255))
        grey.paste(Image.alpha_composite(white, strip).convert("L"), (0, top))
    return grey


def shrink(grey: Image.Image, side: int) -> Image.Image:
    """A greyscale drawing with its longer side at most `side` (antialiased); one within it as it is."""
    size = fitted(grey.size, side)
    if size == grey.size:
        return grey
    return grey.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def decode_grey(text: object, max_pixels: int = Config.max_image_pixels, side: int = Config.stored_side) -> Image.Image:
    """The drawing as greyscale, its longer side at most `side`: what predicting and storing both start from, so
    that a stored drawing gives back the digit its label taught. InputError as `decode_image`."""
    return shrink(flatten(decode_image(text, max_pixels, side)), side)


def encode_png(grey: Image.Image) -> bytes:
    """Lossless PNG of a greyscale image: what the log stores, decoding back to the same pixels.

    zlib's fastest level: a label's PNG in 0.7 ms rather than 1.5 ms (level 6; bench/profile.py), for 12% more
    bytes (a 280x280 canvas of a t10k digit: 9.4 kB against 8.4 kB); what bounds a stored drawing is its side
    (Config.stored_side) and greyscale: 512x512 of noise is ~260 kB either way.
    """
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


def ink_from_grey(grey: np.ndarray) -> np.ndarray:
    """uint8 greyscale (H, W) -> float32 ink in 0..1, ink bright.

    The background is read from the border: dark ink on a light canvas (the usual case) is
    inverted, bright ink on a dark canvas is kept as it is.
    """
    return ink_levels(grey)[grey]


DARK_INK = 1.0 - np.arange(256, dtype=np.float32) / 255.0  # each grey level's ink on a light canvas
BRIGHT_INK = np.arange(256, dtype=np.float32) / 255.0  # ...and on a dark one


def ink_levels(grey: np.ndarray) -> np.ndarray:
    """(256,) float32: the ink of each grey level of uint8 `grey`, as its border says which way ink goes."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]).astype(np.float32) / 255.0
    return DARK_INK if np.median(border) > 0.5 else BRIGHT_INK


# --- preprocessing --------------------------------------------------------------------------------


def preprocess(ink: np.ndarray) -> np.ndarray:
    """Make a digit the way MNIST's were made: (H, W) ink in 0..1 -> (28, 28) float32.

    Crop to the ink, scale the longer side to 20 pixels keeping the aspect ratio (antialiased) with every stroke
    at least MNIST's width (livedigits/pipeline/pen.py), and place it so its centre of mass sits at the centre of
    the 28x28 field. Raises InputError("empty_drawing") when there is (next to) no ink.
    """
    mask = ink >= INK_THRESHOLD
    return digit_of_crop(ink[ink_span(mask.any(axis=1)), ink_span(mask.any(axis=0))].astype(np.float32))


def ink_span(holds_ink: np.ndarray) -> slice:
    """The first to the last row (or column) that holds ink; InputError("empty_drawing") when none does."""
    inked = np.flatnonzero(holds_ink)
    if len(inked) == 0:
        raise empty_drawing()
    return slice(inked[0], inked[-1] + 1)


def digit_of_crop(crop: np.ndarray) -> np.ndarray:
    """A drawing's ink cropped to its span -> the (28, 28) digit; InputError("empty_drawing") for (next to) no ink."""
    if np.count_nonzero(crop >= INK_THRESHOLD) < MIN_INK_PIXELS:
        raise empty_drawing()
    return centre_by_mass(with_mnist_pen(crop))


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) MNIST digits -> float32 digits through the service's own preprocessing."""
    return np.stack([preprocess(image / 255.0) for image in images])


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Paste a (h, w) box (h, w <= 28) into 28x28 with its centre of mass moved to the centre."""
    height, width = box.shape
    total = box.sum()
    centre_y, centre_x = height / 2, width / 2
    if total > 0:  # scipy.ndimage.center_of_mass's own arithmetic, without its overhead (a third of the time)
        centre_y = (box * np.arange(height, dtype=float)[:, None]).sum() / total
        centre_x = (box * np.arange(width, dtype=float)[None, :]).sum() / total
    top = int(np.clip(round(DIGIT_SIZE / 2 - centre_y), 0, DIGIT_SIZE - height))
    left = int(np.clip(round(DIGIT_SIZE / 2 - centre_x), 0, DIGIT_SIZE - width))
    digit = np.zeros((DIGIT_SIZE, DIGIT_SIZE), dtype=np.float32)
    digit[top : top + height, left : left + width] = box
    return digit


def decode_digit(text: object) -> np.ndarray:
    """The one path from a client's base64 to what models see: the (28, 28) digit (within the default limits;
    the service passes its configured ones to `decode_grey`)."""
    return digit_of(decode_grey(text))


def decode_drawing(text: object) -> tuple[np.ndarray, bytes]:
    """A drawing to keep: its (28, 28) digit and the PNG to store."""
    return drawing_of(decode_grey(text))


def drawing_of(grey: Image.Image) -> tuple[np.ndarray, bytes]:
    """A decoded drawing's (28, 28) digit and the PNG to store (encoding costs ~1 ms: only when storing)."""
    return digit_of(grey), encode_png(grey)


def digit_from_png(png: bytes) -> np.ndarray:
    """A stored drawing back to the (28, 28) digit, exactly as `decode_drawing` made it.

    At the size it was stored: drawings stored before they were bounded to Config.stored_side give back the
    digit they taught then."""
    return digit_of(flatten(Image.open(io.BytesIO(png))))


def stored_digit(png: bytes | None) -> np.ndarray | None:
    """A stored drawing's digit, or None if it is missing or unreadable: it teaches nothing, on every process alike."""
    if png is None:
        return None
    try:
        return digit_from_png(png)
    except (InputError, OSError, ValueError):
        return None


def digit_to_text(digit: np.ndarray) -> str:
    """A preprocessed digit as text that `digit_from_text` reads back exactly (4,184 characters)."""
    return base64.b64encode(np.asarray(digit, np.float32).tobytes()).decode()


def digit_from_text(text: object) -> np.ndarray | None:
    """The digit `digit_to_text` wrote, or None if `text` is not one."""
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        return None
    if len(raw) != DIGIT_SIZE * DIGIT_SIZE * 4:
        return None
    digit = np.frombuffer(raw, np.float32).reshape(DIGIT_SIZE, DIGIT_SIZE)
    return digit if np.isfinite(digit).all() and digit.min() >= 0 and digit.max() <= 1 else None


def digit_of(grey: Image.Image) -> np.ndarray:
    """`preprocess(ink_from_grey(grey))` with only the ink's crop made float: the same digit, in less time."""
    pixels = np.asarray(grey)
    levels = ink_levels(pixels)
    inked = np.flatnonzero(levels >= INK_THRESHOLD)  # the grey levels that count as ink: one end of the range
    # A row (column) holds ink if its darkest (brightest) pixel is ink: no mask of the whole drawing is made.
    if levels is DARK_INK:
        rows, cols = pixels.min(axis=1) <= inked[-1], pixels.min(axis=0) <= inked[-1]
    else:
        rows, cols = pixels.max(axis=1) >= inked[0], pixels.max(axis=0) >= inked[0]
    return digit_of_crop(levels[pixels[ink_span(rows), ink_span(cols)]])


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


def quantise(digit: np.ndarray) -> np.ndarray:
    # Memory holds uint8 so that a checkpointed memory and a replayed one are bit-identical.
    return np.rint(np.clip(digit, 0, 1) * 255).astype(np.uint8)
