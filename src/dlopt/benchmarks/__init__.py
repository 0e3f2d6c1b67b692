"""`dlopt bench NAME`: dlopt against its anchors, ratios measured in one run.

Benchmarks live in the package (not a top-level ``benchmarks/`` folder as DESIGN.md sketched)
so that ``dlopt bench`` works from any installation, not only from a source checkout.
"""

from dlopt.benchmarks import augment, bn_fold, ensemble, linear, optim, trainer  # noqa: F401  (registers them)
from dlopt.benchmarks.harness import BENCHMARKS, Benchmark, BenchReport, Timing, run_benchmark

__all__ = ["BENCHMARKS", "BenchReport", "Benchmark", "Timing", "run_benchmark"]
