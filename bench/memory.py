"""What a burst of the largest drawings the API accepts does to a worker's memory, in both web roles.

    python bench/memory.py [--role all|serve|both] [--pixels N --side N] [--cwd FOLDER]

Starts the Procfile's `web:` command (one worker, ROLE=all or ROLE=serve, rate limits off), warms it up with an
ordinary drawing, then sends 16 predictions at once (half the largest-area PNG, half a noisy progressive JPEG as
large as a request may be) and 3 labels (those two and the noisiest PNG a request may hold). Prints the worker's
resident MB before, its peak (VmHWM) during, and after, and the largest drawing stored. `--pixels` and `--side`
describe the limits to build the worst case for (default: the service's own); `--cwd` runs another copy of the
project (the code before a change). tests/processes/test_memory_burst.py asserts the goals on the same burst.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from burst import WorstCase, config_limits, measure_burst, stored_sizes  # noqa: E402
from drawings import stroke_canvas, to_data_url  # noqa: E402
from server import Server  # noqa: E402


def run(role: str, worst: WorstCase, cwd: Path) -> None:
    ordinary = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        env = {"STORAGE_URL": str(store), "ROLE": role, "RATE_LIMITS": "off", "WEB_CONCURRENCY": "1"}
        if role == "serve":
            env["TRAIN_WAIT"] = "0.5"  # no learner runs: labels are stored and answered as pending
        server = Server(env, cwd=cwd)
        try:
            started = time.perf_counter()
            footprint = measure_burst(server, worst.bodies(), ordinary, learns=role == "all")
            print(f"{role}: {footprint} (run {time.perf_counter() - started:.0f} s)")
            print(f"{role}: largest drawing stored {max(stored_sizes(store)) / 1024:,.0f} kB")
        finally:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=("all", "serve", "both"), default="both")
    parser.add_argument("--pixels", type=int, help="the largest image area accepted (default: the service's)")
    parser.add_argument("--side", type=int, help="the longest side accepted (default: the service's)")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the project folder to run")
    args = parser.parse_args()
    pixels, side, request_bytes = config_limits()
    worst = WorstCase.within(args.pixels or pixels, args.side or side, request_bytes)
    print(
        f"worst case: {worst.side}x{worst.side} PNG of {len(worst.png) * 3 // 4 / 1024:,.0f} kB, "
        f"noisy JPEG of {len(worst.jpeg) * 3 // 4 / 1024:,.0f} kB"
    )
    for role in ("all", "serve") if args.role == "both" else (args.role,):
        run(role, worst, args.cwd)


if __name__ == "__main__":
    main()
