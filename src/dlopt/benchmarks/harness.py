"""The benchmark harness: interleaved repeats in one process, medians and ratios.

Each benchmark times dlopt and its anchors on the same inputs, alternating them within every
repeat so that drift (thermal, other load) hits all alike, with torch's thread count pinned.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dlopt._io import check_writable, write_text_atomic
from dlopt._validation import unknown
from dlopt.errors import DloptError


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class BenchReport:
    title: str
    unit: str  # what one timed call covers, e.g. "epoch"
    timings: list[Timing]
    baseline: str  # the name the ratios divide by
    notes: list[str] = field(default_factory=list)
    # what the notes say, as numbers (JSON only): e.g. the optim bench's every contender run
    # and its per-iteration overheads, so that tools read them without parsing text
    data: dict[str, Any] = field(default_factory=dict)
    threads: int = field(default_factory=torch.get_num_threads)
    load: tuple[float, float, float] = field(default_factory=lambda: _load_average())

    def ratio(self, name: str, to: str | None = None) -> float:
        by = {t.name: t for t in self.timings}
        return by[name].median / by[to or self.baseline].median

    def render(self) -> str:
        lines = [
            self.title,
            f"{'variant':<34} {'median':>12} {'min':>12}  ratio to {self.baseline}",
        ]
        for t in self.timings:
            lines.append(
                f"{t.name:<34} {t.median * 1e3:>9.3f} ms {min(t.seconds) * 1e3:>9.3f} ms"
                f"  {self.ratio(t.name):.3f}"
            )
        lines.append(
            f"(per {self.unit}; {len(self.timings[0].seconds)} interleaved repeats; "
            f"torch threads {self.threads}, BLAS threads {_blas_threads()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
            f"{self.load[0]:.2f} {self.load[1]:.2f} {self.load[2]:.2f} at the start)"
        )
        return "\n".join(lines + self.notes)

    def to_json(self) -> dict[str, Any]:
        """The table as data: every timing's runs, the ratios, the notes and the settings."""
        return {
            "title": self.title,
            "unit": self.unit,
            "baseline": self.baseline,
            "threads": self.threads,
            "blas_threads": _blas_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": list(self.load),
            "timings": [
                {
                    "name": t.name,
                    "median_s": t.median,
                    "min_s": min(t.seconds),
                    "seconds": t.seconds,
                    "ratio": self.ratio(t.name),
                    **({"extra": t.extra} if t.extra else {}),
                }
                for t in self.timings
            ],
            "notes": self.notes,
            **({"data": self.data} if self.data else {}),
        }


def write_json(data: dict[str, Any], path: str | Path) -> None:
    """`data` (a report's ``to_json()``, or a tool's tables) as strict JSON, written
    atomically."""
    text = json.dumps(_strict(data), indent=1, allow_nan=False)
    write_text_atomic(Path(path), text)


def _strict(value: Any) -> Any:
    """`value` with every NaN or infinity (a failed contender's ‖∇f‖, a row not run) as None:
    strict JSON, which jq and JavaScript read (Python's json writes NaN, which they refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _load_average() -> tuple[float, float, float]:
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def _blas_threads() -> int | str:
    from threadpoolctl import threadpool_info

    counts = {int(pool["num_threads"]) for pool in threadpool_info()}
    return counts.pop() if len(counts) == 1 else ("/".join(map(str, sorted(counts))) or "none")


def interleave(
    variants: dict[str, Callable[[], float | None]], repeats: int, warmup: int = 1
) -> list[Timing]:
    """Call each variant `repeats` times, alternating; a variant may return its own seconds."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            measured = variants[name]()
            seconds[name].append(measured if measured is not None else time.perf_counter() - start)
    return [Timing(name, seconds[name]) for name in variants]


Run = Callable[[int, torch.device], BenchReport]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Run  # (repeats, device) → report
    devices: tuple[str, ...]  # device types it runs on


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    name: str, description: str, devices: tuple[str, ...] = ("cpu",)
) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        BENCHMARKS[name] = Benchmark(name, description, run, devices)
        return run

    return register


def wall_clock(call: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """(result, seconds) of `call`, the device's queued work included: on a GPU the clock
    starts and stops on a synchronised device."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = call()
    if cuda:
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def parse_device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DloptError(f"--device {text!r} is not a device (e.g. cpu, cuda, cuda:1).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DloptError(f"--device {text}: CUDA is not available on this machine.")
    return device


@contextmanager
def pinned(count: int) -> Iterator[int]:
    """torch and numpy/scipy/sklearn's BLAS on `count` threads, restored afterwards."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(count):
            yield count
    finally:
        torch.set_num_threads(previous)


def every_core() -> AbstractContextManager[int]:
    """Inside a benchmark (which pins one thread): every core this process may use, as a
    user's program runs by default."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return pinned(cores or 1)


def run_benchmark(
    name: str,
    *,
    repeats: int = 5,
    threads: int = 1,
    echo: bool = True,
    device: str | torch.device = "cpu",
    json_path: str | Path | None = None,
) -> BenchReport:
    if name not in BENCHMARKS:
        raise DloptError(
            unknown("benchmark", name, BENCHMARKS),
            source="bench",
        )
    bench = BENCHMARKS[name]
    where = device if isinstance(device, torch.device) else parse_device(device)
    if where.type not in bench.devices:
        raise DloptError(
            f"benchmark {name!r} runs on {', '.join(bench.devices)} only (its anchors do), "
            f"not on {where}.",
            source="bench",
        )
    from dlopt.train.progress import quiet_trainers

    if json_path is not None:
        check_writable(json_path)  # not after minutes of benchmarking

    with pinned(threads), quiet_trainers():
        report = bench.run(repeats, where)
    if echo:
        print(report.render())
    if json_path is not None:
        write_json(report.to_json(), json_path)
    return report
