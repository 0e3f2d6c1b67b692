"""The ``dlopt`` command line: train, evaluate, predict, search, datasets, reproduce, bench.

Exit codes: 0 ok · 1 internal bug (traceback only with --debug) · 2 bad input or usage (one line
``error: …`` on stderr) · 3 training diverged · 130 SIGINT · 143 SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from dlopt.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_DIVERGED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    DloptError,
    TrainingDiverged,
    shown,
)

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts name TOML sections ([search.space]); rich ate them
    help="dlopt: train deep networks with the chapter's techniques and measure its claims.",
)
datasets_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="List the bundled data sets, or check one (or your file).",
)
app.add_typer(datasets_app, name="datasets")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        import torch

        print(f"dlopt {version('dlopt')} (torch {torch.__version__})")
        raise typer.Exit(0)


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="torch's threads for this command (and the processes it starts); overrides "
            "[train] threads. Default: the cores this process may use, at most 4.",
        ),
    ] = None,
) -> None:
    """dlopt: train deep networks with the chapter's techniques and measure its claims."""
    if threads is not None:
        os.environ["DLOPT_THREADS"] = str(threads)  # inherited by search workers and torchrun


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Run configuration (TOML).")],
    out: Annotated[
        Path, typer.Option(help="Folder for checkpoint, history, metrics, plots.")
    ] = Path("runs/latest"),
    resume: Annotated[
        bool, typer.Option(help="Continue the run saved in OUT/checkpoint.pt.")
    ] = False,
    quiet: Quiet = False,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            max=1024,
            help="Data-parallel processes on this host (launches torchrun --standalone).",
        ),
    ] = 1,
) -> None:
    """Train a model from CONFIG; write OUT/{history.csv,checkpoint.pt,best.pt,metrics.json,curves.png}."""
    from dlopt.lab.config import load_config
    from dlopt.lab.run import ensemble_run, train_run

    run_config = load_config(config)
    if nproc > 1:  # several processes: torchrun's elastic agent runs this command N times
        from dlopt.errors import ConfigError
        from dlopt.train.launch import launch

        if "WORLD_SIZE" in os.environ:
            raise ConfigError("--nproc: this is already a torchrun worker; drop --nproc")

        args = ["train", str(config), "--out", str(out)]
        args += ["--resume"] * resume + ["--quiet"] * quiet
        raise typer.Exit(launch(nproc, args))
    result = (
        ensemble_run(run_config, out, resume=resume, quiet=quiet)
        if run_config.ensemble is not None
        else train_run(run_config, out, resume=resume, quiet=quiet)
    )
    if result.interrupted:
        name = signal.Signals(result.interrupted).name
        print(
            f"interrupted by {name}: checkpoint saved in {out}; continue with --resume",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_SIGINT if result.interrupted == signal.SIGINT else EXIT_SIGTERM)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder (dlopt train CONFIG --out RUN).")],
    data: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on all of this data set or file (default: the run's test split)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the metrics (default RUN/evaluation.json).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, …")] = "cpu",
) -> None:
    """Test metrics of a trained run; on its own data, the numbers in RUN/metrics.json."""
    import json

    from dlopt._io import write_text_atomic
    from dlopt.lab.reuse import evaluate_run, load_run

    metrics = evaluate_run(load_run(run, device=device), data)
    summary = {"data": data or "test split", **metrics}
    write_text_atomic(out or run / "evaluation.json", json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder (dlopt train CONFIG --out RUN).")],
    data: Annotated[
        str, typer.Argument(help="Features: a CSV (label column optional) or a data set.")
    ],
    out: Annotated[Path, typer.Option(help="Predictions CSV to write.")] = Path("predictions.csv"),
    proba: Annotated[bool, typer.Option(help="Add each class's probability.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, …")] = "cpu",
) -> None:
    """Write a trained run's predictions for DATA: class names (or values), one row a sample."""
    from dlopt.lab.reuse import load_run, write_predictions

    rows = write_predictions(load_run(run, device=device), data, out, proba=proba)
    print(f"{rows} predictions in {out}", file=sys.stderr)


@app.command("search")
def search_command(
    config: Annotated[Path, typer.Argument(help="Run configuration with a [search] section.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for study.db, search.json, search.html and one folder per trial."
        ),
    ] = Path("runs/search"),
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL (default: sqlite in OUT; postgresql://… for many machines)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="Worker processes on the study.")
    ] = 1,
    quiet: Quiet = False,
) -> None:
    """Search the [search.space] keys of CONFIG; every trial is a training run. Resumable."""
    from dlopt.lab.config import load_config
    from dlopt.lab.search import SearchInterrupted, search_run

    try:
        result = search_run(load_config(config), out, storage=storage, workers=workers, quiet=quiet)
    except SearchInterrupted as stop:
        name = signal.Signals(stop.signum).name
        print(
            f"interrupted by {name}: finished trials are kept in {out}; the same command "
            "continues the search",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_SIGINT if stop.signum == signal.SIGINT else EXIT_SIGTERM) from None
    print(
        f"best {result.best_value:.4g} with {result.best_params}; all trials in "
        f"{out / 'search.json'}, drawn in {out / 'search.html'}"
    )


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """List the bundled data sets."""
    if ctx.invoked_subcommand is not None:
        return
    from dlopt.data import BUNDLED

    for info in BUNDLED.values():
        print(f"{info.name:<14} {info.description}")


@datasets_app.command("show")
def datasets_show(
    source: Annotated[
        str, typer.Argument(help="A bundled name or a file (.csv .npy .npz IDX .bin).")
    ],
    label: Annotated[str | None, typer.Option(help="CSV label column (default: the last).")] = None,
    labels: Annotated[str | None, typer.Option(help="IDX labels file for an images file.")] = None,
) -> None:
    """Validate a data set and print its shape, classes and split sizes."""
    from dlopt.data import load_data, split_dataset

    data = load_data(source, label=label, labels=labels)
    print(f"name        {data.name}")
    print(f"samples     {len(data)}")
    print(f"features    {tuple(data.feature_shape)}")
    print(f"task        {data.task}")
    if data.task == "classification":
        counts = data.y.bincount(minlength=data.n_classes).tolist()
        print(f"classes     {data.n_classes}  (counts {counts})")
        if data.class_names:
            print(f"names       {', '.join(data.class_names)}")
    else:
        print(f"target      mean {float(data.y.mean()):.4g}, std {float(data.y.std()):.4g}")
    try:
        sizes = split_dataset(data, seed=0, standardize=False).sizes()
        print("splits      " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    except DloptError as exc:
        print(f"splits      none ({exc.reason})")


@app.command()
def reproduce(
    quick: Annotated[
        bool, typer.Option("--quick/--full", help="Minutes on 2 CPU cores, or the full runs.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed block: the N run seeds are drawn from it.")] = 0,
    seeds: Annotated[
        int | None,
        typer.Option(help="Independent seeds per claim (default 5 quick, 10 full)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this claim: a group (B4) or a sub-claim (B4.init); repeatable."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Report folder: index.html, results.json, PNGs.")
    ] = Path("report"),
    jobs: Annotated[
        int | None,
        typer.Option(help="Worker processes, one thread each (default: the CPU count, ≤ 4)."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Measure the chapter's claims over many seeds; write OUT/index.html and OUT/results.json."""
    from dlopt.experiments import run_experiments

    jobs = jobs if jobs is not None else max(1, min(4, os.cpu_count() or 1))
    try:
        rows = run_experiments(
            out, quick=quick, only=only or None, quiet=quiet, seed=seed, seeds=seeds, jobs=jobs
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: the rows finished so far are in {out / 'index.html'}, marked "
            "incomplete; run the same command again for the whole report",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_SIGINT) from None
    counts = {
        v: sum(r.verdict == v for r in rows) for v in ("confirmed", "refuted", "inconclusive")
    }
    print(
        f"{len(rows)} sub-claims: {counts['confirmed']} confirmed, {counts['refuted']} refuted, "
        f"{counts['inconclusive']} inconclusive; report: {out / 'index.html'}",
        file=sys.stderr,
    )


@app.command()
def bench(
    name: Annotated[str | None, typer.Argument(help="Benchmark to run; none lists them.")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Interleaved repeats.")] = 5,
    device: Annotated[
        str, typer.Option(help="Where to run: cpu, cuda, cuda:1 (optim and bn-fold).")
    ] = "cpu",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the table as JSON to this file."),
    ] = None,
) -> None:
    """Compare dlopt with its anchors in one process: medians and ratios."""
    from dlopt.benchmarks import BENCHMARKS, run_benchmark

    if name is None:
        for key, bench_ in BENCHMARKS.items():
            print(f"{key:<10} {bench_.description} [{', '.join(bench_.devices)}]")
        return
    run_benchmark(name, repeats=repeats, device=device, json_path=json_out)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every outcome onto the exit-code contract."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DLOPT_DEBUG") == "1"
    args = [a for a in args if a != "--debug"] or ["--help"]
    _log_to_stderr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = _run(args, debug)
    if code in (0, EXIT_DIVERGED, EXIT_SIGINT, EXIT_SIGTERM):  # never beside an error line
        for w in caught:
            print(f"warning: {' '.join(str(w.message).split())[:300]}", file=sys.stderr)
    return code


def _run(args: list[str], debug: bool) -> int:
    """The app, with every outcome mapped onto an exit code (see the module docstring)."""
    try:
        code = app(args=args, prog_name="dlopt", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:  # Ctrl-C where no command said more
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except TyperException as exc:  # usage errors: bad option, missing argument, bad value
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DloptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as exc:  # an unwritable --out, a full disk: the user's to fix, not a bug
        where = f"{shown(exc.filename)}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # a bug: say so in one line, the traceback only with --debug
        if debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())[:300]
        print(
            f"internal error (a bug in dlopt; rerun with --debug): {type(exc).__name__}: {message}",
            file=sys.stderr,
        )
        return EXIT_BUG
    return code if isinstance(code, int) else 0


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when the message comes (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _log_to_stderr() -> None:
    logger = logging.getLogger("dlopt")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
