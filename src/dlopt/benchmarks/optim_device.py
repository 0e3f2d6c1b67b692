"""`dlopt bench optim --device cuda`: wall time and host-device synchronisations per iteration
against torch.optim.LBFGS (SciPy runs on the host only)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial

import torch

from dlopt.benchmarks.harness import BenchReport, Timing
from dlopt.benchmarks.optim_contenders import (
    _ours,
    _torch_lbfgs,
    _torch_lbfgs_defaults,
    fastest,
    interleaved_runs,
)
from dlopt.benchmarks.optim_notes import _vs_torch_note, hvp_notes
from dlopt.benchmarks.optim_problems import ROSENBROCK, problems

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def device_syncs(call: Callable[[], dict[str, float]]) -> tuple[int, dict[str, float]]:
    """Host–device synchronisations during `call` (CUDA runtime calls seen by the profiler),
    less the two the timing itself adds."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():  # "profiler clears events at the end of each cycle"
        warnings.simplefilter("ignore", UserWarning)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run = call()
    count = sum(event.count for event in prof.key_averages() if event.key in SYNC_EVENTS)
    return max(count - 2, 0), run  # none at all off CUDA


def optim_benchmark_on_device(repeats: int, device: torch.device) -> BenchReport:
    """On a GPU: dlopt's L-BFGS, CG and Newton-CG against torch.optim.LBFGS — wall time and
    device synchronisations per iteration (SciPy runs on the host only, so no SciPy rows)."""
    rows = [
        f"{'problem':<18}{'method':<19}{'ok':>6}{'nit':>6}{'nfev':>6}{'ms':>10}{'syncs/it':>10}"
    ]
    timings: list[Timing] = []
    lbfgs_vs_torch: list[float] = []
    lbfgs_vs_defaults: list[float] = []
    sizes = (*ROSENBROCK[2:], 100_000, 1_000_000)
    every = problems(device, sizes)
    for problem in every:
        runs: dict[str, Callable[[], dict[str, float]]] = {
            "dlopt lbfgs": partial(_ours, problem, "lbfgs"),
            "dlopt cg": partial(_ours, problem, "cg"),
            "dlopt newton-cg": partial(_ours, problem, "newton-cg"),
            "torch.optim.LBFGS": partial(_torch_lbfgs, problem),
            "torch LBFGS defaults": partial(_torch_lbfgs_defaults, problem),
        }
        for call in runs.values():
            call()  # warm-up: kernels, allocator
        all_runs = interleaved_runs(runs, repeats)
        best_of = fastest(all_runs)
        seconds = {}
        for name, call in runs.items():
            best = best_of[name]
            syncs, _ = device_syncs(call)
            seconds[name] = best["seconds"]
            rows.append(
                f"{problem.name:<18}{name:<19}{best['ok']!s:>6}{best['nit']:>6}"
                f"{best['nfev']:>6}{best['seconds'] * 1e3:>10.1f}"
                f"{syncs / max(best['nit'], 1):>10.1f}"
            )
        lbfgs_vs_torch.append(seconds["dlopt lbfgs"] / seconds["torch.optim.LBFGS"])
        lbfgs_vs_defaults.append(seconds["dlopt lbfgs"] / seconds["torch LBFGS defaults"])
        rows.append(
            f"{'':<18}L-BFGS wall time dlopt / torch: {lbfgs_vs_torch[-1]:.2f} "
            f"(strong Wolfe), {lbfgs_vs_defaults[-1]:.2f} (torch's defaults; nit = step() calls)"
        )
        timings.append(
            Timing(f"L-BFGS {problem.name}", [r["seconds"] for r in all_runs["dlopt lbfgs"]])
        )
    notes = [
        "",
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}",
        _vs_torch_note(lbfgs_vs_torch, lbfgs_vs_defaults),
    ]
    notes += hvp_notes({p.name: p for p in every})
    return BenchReport(
        f"Second-order optimizers on {device} vs torch.optim.LBFGS (float64, ‖∇f‖∞ ≤ 1e-5)",
        "run",
        timings,
        baseline=timings[0].name,
        notes=rows + notes,
    )
