"""Scrubbing over the CPU cores: forked worker processes that inherit the scrubber's loaded pipeline, so nothing is
pickled but texts and results."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

PARALLEL_FROM = 400  # unique texts; below this, starting worker processes costs more than it saves
_forked = None  # the scrubber the workers inherit, set only while a pool is open


def parts(unique: list[str], workers: int) -> list[list[str]]:
    """Four parts a worker, so a slow part does not leave the other workers idle."""
    size = -(-len(unique) // (workers * 4))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def _scrub_part(part: list[str]):
    return _forked.scrub_here(part)


def _residual_part(part: list[str]) -> tuple[Counter, dict[str, str]]:
    return _forked.rescrub(part)


def scrub(scrubber, unique: list[str], workers: int) -> list:
    """`scrubber.scrub_here` of every text, in forked workers."""
    global _forked
    _forked = scrubber
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [r for part in pool.map(_scrub_part, parts(unique, workers)) for r in part]
    finally:
        _forked = None


class PendingResidual:
    """A residual scan under way in forked workers (`Scrubber.start_residual`): `result()` waits for it and
    `close()` (which `result()` also does) stops the workers; until then the caller's process is free."""

    def __init__(self, pool=None, futures=(), done: tuple[Counter, dict[str, str]] | None = None) -> None:
        self._pool, self._futures = pool, list(futures)
        self._counts, self.rescrubbed = done if done else (None, {})

    def result(self) -> Counter:
        """What the scan found; `rescrubbed` then maps each text it found something in to that text scrubbed again."""
        if self._counts is None:
            try:
                counts: Counter = Counter()
                for future in self._futures:
                    found, again = future.result()
                    counts.update(found)
                    self.rescrubbed.update(again)
                self._counts = counts
            finally:
                self.close()
        return self._counts

    def close(self) -> None:
        global _forked
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            _forked = None


def start_residual(scrubber, unique: list[str], workers: int) -> PendingResidual:
    """`scrubber.rescrub` of the texts, started in forked workers (they fork before this returns)."""
    global _forked
    _forked = scrubber
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    pending = PendingResidual(pool)
    try:
        pending._futures = [pool.submit(_residual_part, part) for part in parts(unique, workers)]
    except BaseException:
        pending.close()
        raise
    return pending
