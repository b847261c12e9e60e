"""Run every benchmark script in this folder: ``python -m tests.benchmarks``.

Benchmarks print figures; they never assert speed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    failures = 0
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")):
        print(f"\n=== tests.benchmarks.{mod}", flush=True)
        module = importlib.import_module(f"tests.benchmarks.{mod}")
        try:
            module.main()
        except Exception as e:  # keep going: one broken benchmark should not hide the others
            failures += 1
            print(f"benchmark {mod} failed: {e!r}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
