"""Before/after for every row of `dlopt bench`, in one interleaved run (issue 19's table).

    OMP_NUM_THREADS=1 python tools/ab_bench.py --rounds 3 --json ab.json
    OMP_NUM_THREADS=1 python tools/ab_bench.py --before 4dc15f6 --rounds 1 linear bn-fold

"Before" is this checkout with one package — the code a bench measures — taken from the
commit `--before`: `regularize` for `linear`, `nn` for `bn-fold`, `augment`, `ensemble`,
`optim`, `train` for `trainer`. Everything else, the bench's own code first, is this
checkout's, so that both sides run the same harness, problems and anchors: only the code under
test differs. (Files added to the package since are kept; the old package does not import
them.) Where the old code lacks a feature a bench row needs (the StackedEnsemble's `fused`, the
Trainer's DataLoader input), `SHIMS` drops the argument or that row on the before side.

Each round runs every bench once per side, `--repeats` interleaved repeats each, in its own
process, in the order before, after, then after, before in the next round: a drift of the
machine's speed weighs on both. A row's times are medians over every repeat of every round;
its ratios are the median over processes of dlopt's median / the anchor's median timed in the
same process, so that a drift of the machine between processes cancels; after/before is the
after side's ratio over the before side's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILED = "4dc15f6"  # the last commit before issue 19's first change (3efb9f6, honest contenders)
SUBJECT = {
    "linear": "regularize",
    "bn-fold": "nn",
    "augment": "augment",
    "ensemble": "ensemble",
    "trainer": "train",
    "optim": "optim",
}
# (row, bench, dlopt's timing, the anchor's timing): milliseconds, median of the runs
TIMED = [
    ("lasso λ=2000", "linear", "dlopt lasso", "sklearn lasso"),
    ("elastic net λ=2000", "linear", "dlopt elastic_net", "sklearn elastic_net"),
    ("lasso λ=50, dense", "linear", "dlopt lasso dense", "sklearn lasso dense"),
    ("elastic net λ=50, dense", "linear", "dlopt elastic_net dense", "sklearn elastic_net dense"),
    ("ridge", "linear", "dlopt ridge", "sklearn ridge"),
    ("BN fold CNN NCHW", "bn-fold", "CNN folded (dlopt)", "CNN fused (torch)"),
    (
        "BN fold CNN channels_last",
        "bn-fold",
        "CNN channels_last folded (dlopt)",
        "CNN channels_last fused (torch)",
    ),
    (
        "BN fold separable b1",
        "bn-fold",
        "separable CNN b1 folded (dlopt)",
        "separable CNN b1 fused (torch)",
    ),
    (
        "BN fold separable b32",
        "bn-fold",
        "separable CNN b32 folded (dlopt)",
        "separable CNN b32 fused (torch)",
    ),
    ("BN fold MLP", "bn-fold", "MLP folded (dlopt)", "MLP fused (torch)"),
    (
        "affine 256×3×32×32",
        "augment",
        "affine (rotation, scale, shift, flip), batched (dlopt)",
        "affine (rotation, scale, shift, flip), kornia",
    ),
    (
        "crop + flip",
        "augment",
        "crop (pad 4) + flip, batched (dlopt)",
        "crop (pad 4) + flip, kornia",
    ),
    *(
        (
            f"stacked ensemble, {m} members",
            "ensemble",
            f"{m} members, stacked (dlopt)",
            f"{m} members, one by one",
        )
        for m in (5, 8, 20)
    ),
    (
        "Trainer.fit vs index loop",
        "trainer",
        "dlopt Trainer.fit",
        "hand-written loop (index slicing)",
    ),
]
# optim rows from the bench's data: (row, run key, dlopt's contender, anchor, what is compared)
OPTIM = [
    ("L-BFGS Rosenbrock n=2 vs SciPy", "rosenbrock-2 lbfgs", "lbfgs", "scipy", "seconds"),
    ("L-BFGS Rosenbrock n=2 vs torch.optim", "rosenbrock-2 lbfgs", "lbfgs", "torch", "seconds"),
    (
        "L-BFGS Rosenbrock n=100 vs torch.optim",
        "rosenbrock-100 lbfgs",
        "lbfgs",
        "torch",
        "seconds",
    ),
    (
        "L-BFGS Rosenbrock n=1000 vs torch.optim",
        "rosenbrock-1000 lbfgs",
        "lbfgs",
        "torch",
        "seconds",
    ),
    (
        "L-BFGS Rosenbrock n=10⁴ vs torch.optim",
        "rosenbrock-10000 lbfgs",
        "lbfgs",
        "torch",
        "seconds",
    ),
    ("L-BFGS logreg vs torch.optim", "logreg-digits lbfgs", "lbfgs", "torch", "seconds"),
    ("L-BFGS MLP vs torch.optim", "mlp-64-32-10 lbfgs", "lbfgs", "torch", "seconds"),
    ("L-BFGS MLP evaluations vs SciPy", "mlp-64-32-10 lbfgs", "lbfgs", "scipy", "nfev"),
    ("L-BFGS MLP vs SciPy", "mlp-64-32-10 lbfgs", "lbfgs", "scipy", "seconds"),
    ("Newton-CG MLP Hv vs torchmin", "mlp-64-32-10 newton-cg", "newton-cg", "torchmin", "nhev"),
    ("Newton-CG MLP vs torchmin", "mlp-64-32-10 newton-cg", "newton-cg", "torchmin", "seconds"),
    ("CG logreg evaluations vs SciPy", "logreg-digits cg", "cg", "scipy", "nfev"),
]
OVERHEAD = [  # µs per iteration outside the objective: (row, problem, ours, SciPy's)
    (f"{method} µs/iteration n={n}", f"rosenbrock-{n}", ours, theirs)
    for n in (2, 100, 1000)
    for method, ours, theirs in (("L-BFGS", "lbfgs", "L-BFGS-B"), ("CG", "cg", "CG"))
]
SHIMS = {  # the before side's missing features, so that this checkout's bench runs on old code
    # the old StackedEnsemble has no `fused`: it always ran through vmap
    "ensemble": """
import dlopt.ensemble.stacked as _stacked
if "fused" not in _stacked.StackedEnsemble.__init__.__code__.co_varnames:
    _init = _stacked.StackedEnsemble.__init__
    def _without_fused(self, *args, fused=True, **kwargs):
        _init(self, *args, **kwargs)
    _stacked.StackedEnsemble.__init__ = _without_fused
""",
    # the old Trainer took no DataLoader: that row (not in the table) is NaN there
    "trainer": """
import dlopt.benchmarks.trainer as _bench
from dlopt.train import trainer as _trainer_module
if "DataLoader" not in open(_trainer_module.__file__).read():
    _plain = _bench._trainer
    _bench._trainer = lambda X, y, loader=False: float("nan") if loader else _plain(X, y)
""",
}


def fail(message: str) -> None:
    """One line and exit 2, as dlopt's own commands do for a bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def before_tree(commit: str, bench: str, where: Path) -> Path:
    """This checkout's src with the bench's subject package from `commit`."""
    tree = where / f"before-{bench}"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    package = f"src/dlopt/{SUBJECT[bench]}"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, package], capture_output=True
    )
    if archive.returncode:
        why = archive.stderr.decode(errors="replace").strip().splitlines()[-1:]
        fail(f"--before {commit}: git archive could not read {package} there ({''.join(why)})")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree / "src"


def run_side(src: Path, bench: str, repeats: int, out: Path) -> dict:
    code = (
        SHIMS.get(bench, "")
        + "from dlopt.benchmarks import run_benchmark\n"
        + f"run_benchmark({bench!r}, repeats={repeats}, echo=False, json_path={str(out)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=out.parent, capture_output=True, text=True
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        fail(f"the {bench} bench failed on {src}: {last}")
    return json.loads(out.read_text())


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


Side = list[tuple[list[float], list[float]]]  # per process: (dlopt's runs, the anchor's runs)


def _ratio(side: Side) -> float:
    """The median over processes of dlopt's median / the anchor's median in that process: a
    drift of the machine's speed between processes cancels."""
    return _median([_median(ours) / _median(anchor) for ours, anchor in side if anchor])


def table(results: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """Rows with before, after and anchor (medians over every run), and the ratios."""
    rows = []

    def add(row: str, unit: str, sides: dict[str, Side]) -> None:
        before, after = sides["before"], sides["after"]
        b_ratio, a_ratio = _ratio(before), _ratio(after)
        rows.append(
            {
                "row": row,
                "unit": unit,
                "before": _median([v for ours, _ in before for v in ours]),
                "after": _median([v for ours, _ in after for v in ours]),
                "anchor": _median([v for _, anchor in after for v in anchor]),
                "before/anchor": b_ratio,
                "after/anchor": a_ratio,
                "after/before": a_ratio / b_ratio,
                "processes": len(after),
            }
        )

    for row, bench, ours, anchor in TIMED:
        if bench not in results:
            continue
        sides: dict[str, Side] = {}
        for side, reports in results[bench].items():
            by = [{t["name"]: t["seconds"] for t in rep["timings"]} for rep in reports]
            sides[side] = [
                ([s * 1e3 for s in r.get(ours, [])], [s * 1e3 for s in r.get(anchor, [])])
                for r in by
            ]
        add(row, "ms", sides)
    if "optim" in results:
        for row, key, ours, anchor, what in OPTIM:
            scale = 1e3 if what == "seconds" else 1
            sides = {
                side: [
                    (
                        [r[what] * scale for r in rep["data"]["runs"][key][ours]],
                        [r[what] * scale for r in rep["data"]["runs"][key].get(anchor, [])],
                    )
                    for rep in reports
                ]
                for side, reports in results["optim"].items()
            }
            add(row, "ms" if what == "seconds" else what, sides)
        for row, problem, ours, theirs in OVERHEAD:
            sides = {
                side: [
                    (
                        [rep["data"]["overhead_us"][problem][ours]],
                        [rep["data"]["overhead_us"][problem][theirs]],
                    )
                    for rep in reports
                ]
                for side, reports in results["optim"].items()
            }
            add(row, "µs", sides)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| row | before | after | anchor | before/anchor | after/anchor | after/before |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} ({r['unit']}) | {r['before']:.4g} | {r['after']:.4g} | "
            f"{r['anchor']:.4g} | {r['before/anchor']:.2f} | **{r['after/anchor']:.2f}** | "
            f"{r['after/before']:.2f} |"
        )
    return "\n".join(lines)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1; got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help=f"of {', '.join(SUBJECT)} (all by default)")
    parser.add_argument(
        "--before",
        default=FILED,
        help=f"the commit of the 'before' code (default {FILED}: issue 19's filing state)",
    )
    parser.add_argument("--rounds", type=_positive, default=3)
    parser.add_argument("--repeats", type=_positive, default=1, help="repeats per bench process")
    parser.add_argument("--json", type=Path, help="write every report and the table here")
    args = parser.parse_args()
    args.benches = args.benches or list(SUBJECT)
    if unknown := [b for b in args.benches if b not in SUBJECT]:
        parser.error(f"no bench {', '.join(unknown)}; choose from {', '.join(SUBJECT)}")
    if args.json is not None and not args.json.parent.is_dir():
        fail(f"--json {args.json}: its folder does not exist")
    results: dict[str, dict[str, list[dict]]] = {
        b: {"before": [], "after": []} for b in args.benches
    }
    with tempfile.TemporaryDirectory(prefix="dlopt-ab-") as scratch:
        where = Path(scratch)
        trees = {b: before_tree(args.before, b, where) for b in args.benches}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for bench in args.benches:
                for side in order:
                    src = trees[bench] if side == "before" else ROOT / "src"
                    out = where / f"{bench}-{side}-{r}.json"
                    results[bench][side].append(run_side(src, bench, args.repeats, out))
                    print(f"round {r + 1}/{args.rounds}: {bench} {side} done", file=sys.stderr)
    rows = table(results)
    print(
        f"before = {args.before} (the measured package only), after = this checkout; "
        f"{args.rounds} rounds × {args.repeats} repeats per side, one process per bench and side, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(markdown(rows))
    if args.json:
        from dlopt.benchmarks.harness import write_json

        write_json({"rows": rows, "reports": results}, args.json)  # a missing figure is null


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
