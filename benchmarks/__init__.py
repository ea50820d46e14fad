"""The benchmarks: one script each, run from the repository's root as `python -m
benchmarks.NAME` (so `edgeswin`, `tests.harness` and `benchmarks` import without any path
set by hand), each writing its JSON to `benchmarks/results/` and its figures, with the command
that made them, to `benchmarks/RESULTS.md`."""
