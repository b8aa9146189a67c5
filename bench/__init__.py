"""tether's benchmarks: speed goals measured against a baseline taken in the same run.

Run them with ``python -m bench [name] [options]`` (``make bench`` wraps this in
``scripts/with-services`` so PostgreSQL is measured too). Each benchmark prints a table, writes
JSON to ``bench/results/`` (not committed) and reports its figures as ratios to a baseline, so
that the numbers mean something on another machine. Figures worth keeping go in
``docs/benchmarks.md``. Timed assertions never go in the test suite.
"""

from __future__ import annotations

# name -> module with ``main(argv: list[str]) -> int``
BENCHMARKS: dict[str, str] = {
    "directory_search": "bench.directory_search",
    "sync": "bench.sync",
    "delete": "bench.delete",
    "metrics_scrape": "bench.metrics_scrape",
    "console_list": "bench.console_list",
    "webhooks": "bench.webhooks",
    "fleet": "bench.fleet",
    "fhir_data": "bench.fhir_data",
    "scale": "bench.scale",
}
