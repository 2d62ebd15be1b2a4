"""The inbox: the named queue through which labels reach the learner without a storage read.

A server that appends an entry puts it here with the drawing's PNG and its decoded digit (the `all` role: the
learner is a thread of the same process); the `learn` role's worker puts here what a notification carried. The
learner takes what waits whenever it looks for its next entry (`LogLearner.receive`). An entry that never
arrives here is still found in the log: the inbox saves the learner a read, never a label.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple

import numpy as np

from livedigits.state.journal import Entry


class Delivery(NamedTuple):
    number: int
    entry: Entry | None
    png: bytes | None
    digit: np.ndarray | None


class Inbox:
    """Thread-safe; bounded (`capacity` deliveries, the oldest dropped first: those are read from the log)."""

    def __init__(self, capacity: int = 256, wake: threading.Event | None = None):
        self._deliveries: deque[Delivery] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.wake = threading.Event() if wake is None else wake  # set by each delivery: the learner looks at once

    def put(self, number: int, entry: Entry | None, png: bytes | None = None, digit: np.ndarray | None = None) -> None:
        with self._lock:
            self._deliveries.append(Delivery(number, entry, png, digit))
        self.wake.set()

    def __len__(self) -> int:
        return len(self._deliveries)

    def take(self) -> list[Delivery]:
        """Everything delivered since the last take, oldest first."""
        with self._lock:
            deliveries = list(self._deliveries)
            self._deliveries.clear()
        return deliveries
