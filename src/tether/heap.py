"""The cyclic garbage collector, set for tether's long-running processes.

Two settings, both measured (docs/benchmarks.md, "Fleet"): a syncing process collects its
youngest generation less often (:func:`tune_gc`), and a server or worker moves what it built
at start-up (modules, the app, the runtime: some 200,000 objects) out of the collector's way
(:func:`freeze_start_up`), so a full collection walks what the process made since, not
everything it ever imported.
"""

from __future__ import annotations

import gc

# Objects allocated between two collections of the youngest generation (CPython: 700). See
# tune_gc.
GC_YOUNG_THRESHOLD = 10_000
# The same in a dedicated ``tether worker``, where no API request waits for a collection.
WORKER_YOUNG_THRESHOLD = 100_000


def tune_gc(young: int = GC_YOUNG_THRESHOLD) -> None:
    """Collect the youngest generation every ``young`` allocations, not every 700.

    Nearly all the collector's time in a syncing process is spent walking live objects, not
    freeing garbage: a page's parse (``orjson.loads`` in :func:`~tether.sync.checks.prepare_page`)
    allocates thousands of dicts and lists that stay alive until the page is checked. At 700,
    young collections run in the middle of each parse, find the page alive (0.3 to 1 % of
    what they walk is garbage) and promote it; the promoted pages (dead soon after, but
    counted) trigger full collections, each walking the whole heap (about 300,000 objects,
    160 to 210 ms). Pausing the collector during the parse alone removed 77 % of the young
    collections and 5 of 6 full ones in a 100-sync run, so the parse is what drives them.

    Measured in-process (100 members' syncs three times, SQLite, 200 in flight, pages prepared
    in threads, 2026-12-04): at 700, 3,115 young / 283 middle / 18 full collections, 3.8 s of
    18.1 s of CPU; at 10,000, 69 / 6 / 0, 1.1 s of 16.1 s. Memory: the reference cycles that
    held page bodies until collected (httpx's responses; the sync's pages now come through
    aiohttp, which leaves none: ``tests/sync/test_paging.py``) were broken, so
    ``test_memory_stays_bounded_by_a_few_pages`` peaked at 5.2 MB at 10,000 (4.3 MB at 700; its
    bound is 13 MB; 13.8 MB with the cycles), and the worker's peak RSS did not grow (277 MB
    against 298 MB at 700 in the run above). The process-wide setting is lowered never, only
    raised (an operator's higher value, or 0 for "off", stands).

    ``tether worker`` raises it to :data:`WORKER_YOUNG_THRESHOLD`. With 200 syncs in flight
    the objects a sync keeps (its tasks, frames, responses, a page being prepared) live a
    second or two, longer than the young generation's turn at 10,000, so nearly every young
    collection walked live objects and promoted them. Measured in the fleet's worker
    (PostgreSQL, 1,000 members, 2026-12-05 05:06 and 05:10, ``gc.callbacks``): at 10,000, 768
    young, 68 middle and 7 full collections took 6.1 s of its 47.7 s of CPU; at 100,000, 11
    young collections (about 70 ms each) and one full took 0.9 s of 42.1 s; 1,136 syncs a
    minute against 1,020, peak RSS 288 MB against 281 MB. A process that also serves the API
    keeps 10,000: a 70 ms pause would be an API request's."""
    current, older, oldest = gc.get_threshold()
    if 0 < current < young:
        gc.set_threshold(young, older, oldest)


def freeze_start_up() -> None:
    """Collect once, then move every object alive into the permanent generation
    (:func:`gc.freeze`): they are never walked by a collection again, nor freed by one.

    Called once a process has built what it keeps for life, just before it starts serving
    (``tether serve`` / ``demo``, ``tether worker``). Measured on a server of 230,000 tracked
    objects: its rare full collections (about one in 600 tenant-page requests) took 130 to
    170 ms, 16 ms after the freeze; in a process that syncs 100,000 resources, the collector's
    time fell from 2.6 to 0.5 s. Not done by ``create_app``: tests build many apps in one
    process, and each freeze would keep their garbage for good."""
    gc.collect()
    gc.freeze()
