"""The fleet gauges' cache: a scrape never waits for the database after the first one."""

from __future__ import annotations

import threading
import time

from tether.metrics import Gauge, SnapshotCollector


def _values(collector: SnapshotCollector) -> list[float]:
    return [s.value for family in collector.collect() for s in family.samples]


def test_stale_snapshot_is_served_while_one_refresh_runs() -> None:
    reads: list[int] = []
    release = threading.Event()
    failing = [False]

    def read() -> list[Gauge]:
        reads.append(1)
        if len(reads) > 1:
            release.wait(5)
        if failing[0]:
            raise RuntimeError("database down")
        return [Gauge("g", "a gauge", (), (((), float(len(reads))),))]

    collector = SnapshotCollector(read, ttl=0.05)
    assert _values(collector) == [1.0]  # the first scrape reads inline
    assert _values(collector) == [1.0] and len(reads) == 1  # fresh: no read
    time.sleep(0.06)
    started = time.monotonic()
    assert _values(collector) == [1.0]  # stale: served at once, one refresh started
    assert _values(collector) == [1.0]  # a refresh is running: no second one
    assert time.monotonic() - started < 1.0
    release.set()
    deadline = time.monotonic() + 5
    while _values(collector) != [2.0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(reads) == 2
    # A failing refresh keeps the last good snapshot.
    failing[0] = True
    time.sleep(0.06)
    assert _values(collector) == [2.0]
    deadline = time.monotonic() + 5
    while len(reads) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)
    assert _values(collector) == [2.0]
