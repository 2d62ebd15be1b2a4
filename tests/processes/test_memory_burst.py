"""Every request's cost is bounded (issue 33): sixteen of the largest drawings the API accepts at once, sent to the
Procfile's own command, keep a worker's memory within its dyno and give it back.

The worst case is built from the limits themselves (tests/support/burst.py): the largest-area PNG, a noisy
progressive JPEG as large as a request may be, and the noisiest PNG, labelled too. Memory is the worker's VmRSS
and VmHWM (its peak, reset before the burst), read from /proc. Goals: the `all` role (TensorFlow and the learner)
under 1 GB at its peak, a `serve` worker under 250 MB, each back within 50 MB of where it started; no drawing stored
over 1 MB. bench/memory.py prints the same numbers.
"""

from __future__ import annotations

import pytest
from burst import WorstCase, config_limits, measure_burst, stored_sizes
from drawings import stroke_canvas, to_data_url
from server import Server

ORDINARY = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))
# role: (peak MB, MB kept after the burst)
GOALS = {"all": (1024, 50), "serve": (250, 50)}


@pytest.fixture(scope="module")
def worst() -> WorstCase:
    return WorstCase.within(*config_limits())


@pytest.mark.parametrize("role", ["all", "serve"])
def test_a_burst_of_the_largest_drawings_is_bounded_and_given_back(tmp_path, worst, role):
    store = tmp_path / "store"
    env = {"STORAGE_URL": str(store), "ROLE": role, "RATE_LIMITS": "off", "WEB_CONCURRENCY": "1"}
    if role == "serve":
        env["TRAIN_WAIT"] = "0.5"  # no learner runs: labels are stored and answered as pending
    server = Server(env)
    try:
        footprint = measure_burst(server, worst.bodies(), ORDINARY, learns=role == "all")
    finally:
        server.kill()
    print(f"{role}: {footprint}")
    assert set(footprint.statuses) <= {200, 202}, footprint
    peak, kept = GOALS[role]
    assert footprint.peak < peak, footprint
    assert footprint.after - footprint.start < kept, footprint
    sizes = stored_sizes(store)
    assert len(sizes) == 1 + 3  # the warm-up's label and the burst's three
    assert max(sizes) < 1024 * 1024
