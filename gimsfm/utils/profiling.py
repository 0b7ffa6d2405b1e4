"""Wall time and peak memory measurement for stages and benchmarks."""
from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from typing import Iterator

import psutil


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB) since start."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PeakMemory:
    """Samples RSS in a background thread to get the peak of one section (ru_maxrss is process-wide)."""

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self._proc.memory_info().rss / 2**20
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss / 2**20)


@contextmanager
def timed(timings: dict, key: str) -> Iterator[None]:
    """Accumulate wall seconds of the block into timings[key]."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
