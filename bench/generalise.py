"""Any hand, any pen, anything that is not a digit: what the service answers drawings its generators never made.

    python bench/generalise.py [--n 2000] [--per-family 300] [--skip-leave-one-out] [--models models]

1. Pens. t10k digits (the first --n) and scikit-learn's load_digits (all 1,797: 8x8, another hand, upscaled), each
   redrawn along its skeleton by a round pen 1..8 pixels wide after preprocessing (livedigits.offline.canvas's
   `with_width`), sent as canvas PNGs to POST /api/predict of a fresh app: the original FNN's and CNN's top-1, the
   share refused, and the share whose loops the pen filled (holes fewer than at width 2: a bound on any reader).
   "as drawn": the digit as it is, MNIST's own pen.
2. Not a digit. Every family's bench seeds (livedigits/offline/nondigits/) through POST /api/predict: the share the
   shipped detector refuses; then, unless --skip-leave-one-out, each held-out set measured by a detector retrained
   without it (livedigits/offline/refusal.py), which is the figure that counts: the shipped detector learned every
   family's training seeds.
Goals (issue 34): CNN >= 99.0% and FNN >= 97.0% at every width on t10k, no width more than 0.5 point under the
normal one; every held-out family >= 80% refused; digits refused <= 1% at every width.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livedigits.config import Config  # noqa: E402
from livedigits.offline.canvas import canvas_of, to_data_url, with_width  # noqa: E402
from livedigits.offline.nondigits import FAMILIES, HOLDOUTS, generate  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402
from main import create_app  # noqa: E402

MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
WIDTHS = (0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8)  # 0.5: a hairline, drawn large
NORMAL = 2.5  # MNIST's median stroke width after preprocessing (2.6)
GOALS = {"fnn": 0.970, "cnn": 0.990}
REFUSE_GOAL, DIGITS_REFUSED_LIMIT, UNDER_NORMAL = 0.80, 0.01, 0.005


def holes(pixels: list[list[int]]) -> int:
    """Holes in a preprocessed digit (the response's "preprocessed" pixels): background pieces the border misses."""
    ink = np.asarray(pixels) >= 128
    return ndimage.label(np.pad(~ink, 1))[1] - 1


def answers(client, canvases) -> list[dict | None]:
    """The service's answer to each canvas; None for an empty drawing (422, refused before any verdict)."""
    out = []
    for canvas in canvases:
        response = client.post("/api/predict", json={"image": to_data_url(canvas)})
        out.append(None if response.status_code == 422 else response.get_json())
    return out


def pen_row(client, inks, truth, width) -> dict:
    canvases = [canvas_of(ink) if width is None else with_width(ink, width) for ink in inks]
    results = answers(client, canvases)
    row = {"refused": np.mean([r is None or r["answer"] is None for r in results])}
    for model in ("fnn", "cnn"):
        top = [-1 if r is None else r["predictions"][model]["original"][0]["digit"] for r in results]
        row[model] = float(np.mean(np.array(top) == truth))
    row["holes"] = [0 if r is None else holes(r["preprocessed"]) for r in results]
    return row


def pens(client, sets: dict, widths) -> list[str]:
    print(f"{'digits':<8} {'pen':>8} {'n':>6}   {'FNN':>7}   {'CNN':>7}   {'refused':>7}   {'loops filled':>12}")
    missed = []
    for name, (inks, truth) in sets.items():
        rows, started = {}, time.perf_counter()
        for width in (None, *widths):
            rows[width] = pen_row(client, inks, truth, width)
        reference = np.array(rows[2]["holes"]) if 2 in rows else None
        for width, row in rows.items():
            filled = "" if reference is None else f"{np.mean(np.array(row['holes']) < reference):12.1%}"
            label = "as drawn" if width is None else f"{width:g} px"
            print(
                f"{name:<8} {label:>8} {len(truth):>6}   {row['fnn']:7.2%}   {row['cnn']:7.2%}   {row['refused']:7.2%}"
                f"   {filled}",
                flush=True,
            )
            if name == "t10k" and width is not None and width >= 1:
                for model, goal in GOALS.items():
                    if row[model] < goal:
                        missed.append(f"t10k {label}: {model} {row[model]:.2%} < {goal:.1%}")
                    if NORMAL in rows and row[model] < rows[NORMAL][model] - UNDER_NORMAL:
                        missed.append(f"t10k {label}: {model} more than 0.5 point under the normal width")
            if row["refused"] > DIGITS_REFUSED_LIMIT:
                missed.append(f"{name} {label}: digits refused {row['refused']:.2%} > {DIGITS_REFUSED_LIMIT:.0%}")
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return missed


def families(client, per_family: int) -> dict[str, float]:
    print(f"\n{'family':<28} {'n':>5}   {'refused by the shipped detector':>31}")
    refused = {}
    for family in FAMILIES:
        results = answers(client, generate(family, per_family, "bench"))
        refused[family] = float(np.mean([r is None or r["answer"] is None for r in results]))
        print(f"{family:<28} {per_family:>5}   {refused[family]:31.1%}", flush=True)
    return refused


def held_out_sets(
    refused: dict[str, float], models: Path, per_family: int, retrain: bool, use_opinions: bool = True
) -> list[str]:
    """Per held-out set: the shipped detector's share refused and, with `retrain`, a detector's trained without it
    (weighing the original models' opinions, or with `use_opinions` False, the drawing alone)."""
    table = {}
    if retrain:
        from livedigits.offline.refusal import RefusalConfig, leave_one_out
        from livedigits.offline.train import detector_examples

        print("\nretraining the detector without each held-out set:", flush=True)
        refusal = RefusalConfig(bench_per_family=per_family, use_opinions=use_opinions)
        table = leave_one_out(detector_examples(MNIST_DIR, models, refusal, bench=True), refusal)
    print(f"\n{'held out':<24} {'shipped detector':>16} {'trained without it':>18}")
    for name, families in HOLDOUTS.items():
        without = f"{table[name]:18.1%}" if name in table else f"{'-':>18}"
        print(f"{name:<24} {np.mean([refused[f] for f in families]):16.1%} {without}")
    return [f"held out {n}: {s:.1%} < {REFUSE_GOAL:.0%}" for n, s in table.items() if s < REFUSE_GOAL]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="t10k digits (the first n)")
    parser.add_argument("--per-family", type=int, default=300, help="bench drawings of each non-digit family (0: none)")
    parser.add_argument("--widths", default=",".join(f"{w:g}" for w in WIDTHS))
    parser.add_argument("--skip-leave-one-out", action="store_true")
    parser.add_argument(
        "--without-opinions", action="store_true", help="retrain without the models' opinions: what they add"
    )
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    images, labels = load_split(MNIST_DIR, "t10k")
    uci = load_digits()
    sets = {"t10k": (images[: args.n], labels[: args.n]), "uci": (uci.images / 16.0, uci.target)}
    widths = [float(w) for w in args.widths.split(",") if w]
    with tempfile.TemporaryDirectory() as store:
        client = create_app(Config(storage_url=store, rate_limits="off", models_dir=args.models)).test_client()
        missed = pens(client, sets, widths)
        refused = families(client, args.per_family) if args.per_family else {}
    if refused:
        print(f"{'all families':<28} {args.per_family * len(FAMILIES):>5}   {np.mean(list(refused.values())):31.1%}")
        retrain = not args.skip_leave_one_out
        missed += held_out_sets(refused, args.models, args.per_family, retrain, not args.without_opinions)
    print("\ngoals: " + ("all met" if not missed else "missed:\n  " + "\n  ".join(missed)))


if __name__ == "__main__":
    main()
