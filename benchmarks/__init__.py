"""The benchmarks: one script each, run from the repository's root as `python -m
benchmarks.NAME` (so `edgeswin`, `tests.harness` and `benchmarks` import without any path
set by hand), each writing its JSON to `benchmarks/results/` and its figures, with the command
that made them, to `benchmarks/RESULTS.md`."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, output: Path | None, show: bool = True) -> None:
    """A benchmark's report as indented JSON: printed (unless `show` is off) and written to
    `output` when one is given."""
    text = json.dumps(report, indent=1)
    if show:
        print(text)
    if output:
        output.write_text(text + "\n")
