"""Every bad input the reliability tests send, with the status each gets and how long it takes.

    python bench/bad_inputs.py

The cases are tests/test_reliability.py's table (each endpoint, each kind of bad input); the test checks
statuses, bodies and that nothing changes, this prints the time too (the goal: a 4xx within a second).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "tests" / "app")]

from test_reliability import BAD_REQUESTS, ONE  # noqa: E402

from livedigits.config import Config  # noqa: E402
from main import create_app  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as store:
        client = create_app(Config(storage_url=store, rate_limits="off")).test_client()
        client.post("/api/train", json={"image": ONE, "label": 1})
        by_case: dict[str, list[str]] = defaultdict(list)
        slowest = (0.0, "")
        for route, case, kwargs, expected in BAD_REQUESTS:
            started = time.perf_counter()
            response = client.post(route, **kwargs)
            ms = (time.perf_counter() - started) * 1000
            slowest = max(slowest, (ms, f"{route} {case}"))
            mark = "" if response.status_code == expected else f" (expected {expected})"
            by_case[case].append(f"{route} {response.status_code}{mark} {ms:.0f} ms")
        for case, results in by_case.items():
            print(f"{case}: " + "; ".join(results))
        print(f"\n{len(BAD_REQUESTS)} bad requests; slowest: {slowest[1]} in {slowest[0]:.0f} ms")


if __name__ == "__main__":
    main()
