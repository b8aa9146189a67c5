"""``python -m bench [name] [options]``: run one benchmark, or all of them without a name."""

from __future__ import annotations

import importlib
import sys

from bench import BENCHMARKS

USAGE = f"""usage: python -m bench [NAME] [OPTIONS]

benchmarks: {", ".join(BENCHMARKS)}
With no NAME every benchmark runs with its defaults; `python -m bench NAME --help` lists
a benchmark's options."""


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}\n\n{USAGE}", file=sys.stderr)
            return 2
        return int(importlib.import_module(BENCHMARKS[name]).main(rest))
    status = 0
    for module in BENCHMARKS.values():
        status = max(status, int(importlib.import_module(module).main(argv)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
