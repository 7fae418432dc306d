"""The ``tangentlab`` command line: list studies, run a sweep, show its results, write its report, audit a model.

Exit codes: 0 on success; 1 when a sweep finished with failed runs (after the others ran); 2 for a bad config,
option or output folder (a one-paragraph message naming the file and the field, no traceback).
"""

from __future__ import annotations

import signal
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import torch
import typer

from tangentlab import studies
from tangentlab._cli_configs import configs_app, print_params
from tangentlab._cli_report import build_sections, only_studies
from tangentlab._packaged import resolve_config
from tangentlab._version import __version__
from tangentlab.auditing import Thresholds
from tangentlab.auditing import audit as run_audit
from tangentlab.report import write_report
from tangentlab.runner import (
    FolderInUseError,
    Interrupted,
    ResultStore,
    StoredRun,
    StoreError,
    check_device,
    load_sweep,
    run_sweep,
)

app = typer.Typer(
    name="tangentlab",
    help="Does this finite neural network behave as neural tangent kernel theory predicts?",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: wraps at the terminal's width (at most 80), no boxes
)


class Executor(StrEnum):
    local = "local"
    ray = "ray"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class AuditOptimizer(StrEnum):
    gd = "gd"
    sgd = "sgd"
    adam = "adam"


class AuditShape(StrEnum):
    auto = "auto"
    flat = "flat"
    image = "image"


class AuditDtype(StrEnum):
    float64 = "float64"
    float32 = "float32"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"tangentlab: {message}", err=True)
    return typer.Exit(code)


app.add_typer(configs_app, short_help="List, show or copy the packaged sweep files.")
QUIET = {
    "on": False
}  # set by the top-level -q/--quiet: no progress bars, no status lines (errors still shown)


def _say(message: str) -> None:
    """A status line on stdout, unless -q/--quiet."""
    if not QUIET["on"]:
        typer.echo(message)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tangentlab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("-q", "--quiet", help="No progress bars or status lines; errors still go to stderr."),
    ] = False,
) -> None:
    """Does this finite neural network behave as neural tangent kernel theory predicts?"""
    QUIET["on"] = quiet


@app.command("studies")
def list_studies(
    params: Annotated[
        str | None, typer.Option("--params", metavar="NAME", help="Print study NAME's parameters instead.")
    ] = None,
) -> None:
    """List the registered studies: name, title and citation."""
    if params is not None:
        print_params(params)
        return
    for cls in studies.list_studies():
        typer.echo(f"{cls.name}\t{cls.title}\t{cls.citation}")


@app.command("run")
def run(
    config: Annotated[
        Path, typer.Argument(help="A sweep file (YAML), or a packaged config's name (`tangentlab configs`).")
    ],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: results/<config stem>).")] = None,
    executor: Annotated[Executor, typer.Option(help="Where runs are computed.")] = Executor.local,
    address: Annotated[
        str | None, typer.Option(help="A Ray cluster's address (with --executor ray).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Parallel runs (processes, or a local Ray's CPUs).")
    ] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again.")] = False,
    device: Annotated[
        str, typer.Option(help="Torch device of every run (CPU-only studies run on, and record, cpu).")
    ] = "cpu",
    gpus_per_run: Annotated[
        float | None,
        typer.Option(
            help="With --executor ray and a cuda device: GPUs per run (a fraction packs runs on a GPU)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a sweep (resumable: runs already done are skipped)."""
    _check_device(device, local=not (executor is Executor.ray and address))
    with tempfile.TemporaryDirectory(prefix="tangentlab-config-") as scratch:
        try:
            sweep, study, runs = load_sweep(resolve_config(config, Path(scratch)), studies.get_study)
        except ValueError as err:  # ConfigError is a ValueError
            raise _fail(str(err)) from None
    if address is not None and executor is not Executor.ray:
        raise _fail(f"--address: only used with --executor ray, got --executor {executor.value}")
    out_dir = out if out is not None else Path("results") / config.stem
    try:
        summary = run_sweep(
            study,
            runs,
            out_dir,
            executor=executor.value,
            workers=workers,
            address=address,
            retry_failed=retry_failed,
            device=device,
            progress=progress and not QUIET["on"],
            sweep=sweep.model_dump(mode="json"),
            source=str(config),
            gpus_per_run=gpus_per_run,
        )
    except (ImportError, FolderInUseError, StoreError, ValueError) as err:  # ValueError: --gpus-per-run
        raise _fail(str(err)) from None
    except Interrupted as stop:
        typer.echo(
            f"tangentlab: interrupted by {signal.Signals(stop.signum).name}; workers stopped, unfinished runs "
            f"left to rerun: run the same command to resume ({out_dir})",
            err=True,
        )
        raise typer.Exit(128 + stop.signum) from None
    _say(
        f"{out_dir}: {summary.total} runs; {summary.skipped} already finished, {summary.done} done now, "
        f"{len(summary.failed)} failed now, {len(summary.failed_before)} failed earlier (not retried)"
    )
    for run_id in (*summary.failed, *summary.failed_before):
        typer.echo(f"failed: {run_id} (see `tangentlab results {out_dir}`)", err=True)
    if not summary.ok:
        raise typer.Exit(1)


@app.command("results", short_help="The runs of an output folder as a table, CSV or JSON.")
def results(
    out_dir: Annotated[Path, typer.Argument(help="A sweep's output folder.")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    columns: Annotated[
        str | None,
        typer.Option(metavar="COLS", help="Comma-separated columns to show, e.g. width,seed,kernel_change."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            metavar="COND", help="Keep runs where NAME OP VALUE holds, e.g. 'width>=1024' (repeatable)."
        ),
    ] = None,
    mean_over: Annotated[
        list[str] | None,
        typer.Option(
            metavar="COLUMN", help="Average finished runs over this column, e.g. seed: means and _se columns."
        ),
    ] = None,
) -> None:
    """One line per run: id, study, status, the values that vary between runs, metrics.

    A column is named in full (params.width) or by its last part when unique (width). The table keeps the
    columns that fit the terminal; --format csv or json gives them all (JSON has null for NaN).
    """
    from tangentlab._cli_results import show_results

    try:
        show_results(_stored(out_dir), format.value, columns=columns, where=where or (), over=mean_over or ())
    except ValueError as err:
        raise _fail(str(err)) from None


@app.command("report", short_help="Write the HTML report of an output folder.")
def report(
    out_dir: Annotated[Path, typer.Argument(help="A sweep's output folder.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the report into OUT/report/ (e.g. for a read-only results folder)."
        ),
    ] = None,
    use_all: Annotated[
        bool, typer.Option("--all", help="Pool the runs of every config revision, not only the last one.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--study",
            help="Report only this study (repeatable); with --all, pools the sweep files of one study that "
            "share a folder (e.g. full/scaling and full/scaling_cnn) without pooling the other studies.",
        ),
    ] = None,
) -> None:
    """Write the HTML report of every study in the folder (``DIR/report/index.html``) and print its path.

    Each study uses the runs of the last sweep run into the folder; runs of other config revisions, runs whose
    artifacts are gone and diverged runs are named in the report's header.
    """
    with _opened(out_dir) as store:
        rows = store.runs()
        sweeps = {name: store.sweeps(name) for name in store.studies()}
    try:
        rows = only_studies(rows, only, out_dir) if only else rows
    except ValueError as err:
        raise _fail(str(err)) from None
    target = out if out is not None else out_dir
    figures_dir = (target / "report" / "figures").resolve()  # studies may return their figures as given
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _fail(
            f"--out: cannot write the report into {target} ({err.strerror}); pass --out elsewhere"
        ) from None
    try:
        built = build_sections(
            rows, sweeps, use_all=use_all, figures_dir=figures_dir, out_dir=out_dir, target=target
        )
    except ValueError as err:
        raise _fail(str(err)) from None
    for message in built.messages:
        typer.echo(message, err=True)
    counts = {status: sum(row.status == status for row in rows) for status in ("done", "failed", "running")}
    metadata = {
        "output folder": str(out_dir),
        "runs": ", ".join(f"{n} {status}" for status, n in counts.items()),
        **built.notes,
        "tangentlab": __version__,
        "torch": torch.__version__,
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"tangentlab report {out_dir}"
        + (f" --out {out}" if out is not None else "")
        + (" --all" if use_all else "")
        + "".join(f" --study {name}" for name in dict.fromkeys(only or ())),
    }
    path = write_report(target, built.sections, title=f"tangentlab report: {out_dir.name}", metadata=metadata)
    _say(str(path))


@app.command("audit", short_help="Is your own model in the kernel regime?")
def audit(
    factory: Annotated[
        str,
        typer.Argument(
            help="MODULE:FACTORY or path/to/file.py:FACTORY — a callable returning an nn.Module "
            "(called with seed= if it takes one)."
        ),
    ],
    data: Annotated[
        str, typer.Option(help="Dataset: digits, mnist1d, mnist5k, mnist, synthetic or npz:PATH.")
    ],
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 200,
    optimizer: Annotated[AuditOptimizer, typer.Option(help="Optimizer (MSE loss).")] = AuditOptimizer.gd,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Learning rate (default: 0.5 n/λ_max(Θ_0) for gd/sgd, 1e-3 for adam)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size (required for sgd).")] = None,
    n_train: Annotated[int, typer.Option(min=1, help="Training examples.")] = 256,
    n_test: Annotated[int, typer.Option(min=1, help="Test examples.")] = 256,
    probe: Annotated[int, typer.Option(min=1, help="Training inputs on which the eNTK is tracked.")] = 64,
    seeds: Annotated[int, typer.Option(min=2, help="Init seeds for the eNTK spread.")] = 3,
    seed: Annotated[int, typer.Option(help="Init seed of the trained net.")] = 0,
    data_seed: Annotated[int, typer.Option(help="Subsampling seed of the data.")] = 0,
    checkpoints: Annotated[int, typer.Option(min=1, help="eNTK snapshots during training.")] = 20,
    shape: Annotated[
        AuditShape,
        typer.Option(help="Input layout: flat (n, d), image (n, C, ...), or auto (flat, else image)."),
    ] = AuditShape.auto,
    dtype: Annotated[AuditDtype, typer.Option(help="Model and data dtype.")] = AuditDtype.float64,
    max_kernel_spread: Annotated[float, typer.Option(help="Threshold: eNTK spread over seeds.")] = 0.1,
    max_kernel_distance: Annotated[float, typer.Option(help="Threshold: kernel distance S(0,T).")] = 0.1,
    max_kernel_velocity: Annotated[
        float, typer.Option(help="Threshold: final velocity × steps (radians).")
    ] = 0.45,
    max_param_change: Annotated[float, typer.Option(help="Threshold: relative parameter change.")] = 0.1,
    max_function_gap: Annotated[float, typer.Option(help="Threshold: net vs linearized gap.")] = 0.1,
    max_error_gap: Annotated[
        float, typer.Option(help="Threshold: test error gap, net vs NTK regression.")
    ] = 0.02,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: results/audit_<factory>).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Torch CPU threads (default: torch's; 1 is fastest on a busy machine)."),
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device of the model and data (cpu, cuda, mps).")] = "cpu",
    progress: Annotated[bool, typer.Option(help="Show progress bars (stderr).")] = True,
) -> None:
    """Is your own model in the kernel regime? A verdict per criterion, as a table, JSON and an HTML page.

    Exit code 0 whatever the verdict.

    Exit code 2 (one line, no traceback): the factory cannot be imported, does not return an nn.Module, or does
    not fit the data; or a bad option or dataset.
    """
    _check_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        thresholds = Thresholds(
            kernel_spread=max_kernel_spread,
            kernel_distance=max_kernel_distance,
            kernel_velocity=max_kernel_velocity,
            param_change=max_param_change,
            function_gap=max_function_gap,
            error_gap=max_error_gap,
        )
        result = run_audit(
            factory,
            data,
            steps=steps,
            optimizer=optimizer.value,
            learning_rate=lr,
            batch_size=batch_size,
            n_train=n_train,
            n_test=n_test,
            probe_size=probe,
            seeds=seeds,
            seed=seed,
            data_seed=data_seed,
            checkpoints=checkpoints,
            shape=shape.value,
            dtype=getattr(torch, dtype.value),
            thresholds=thresholds,
            progress=progress and not QUIET["on"],
            device=device,
        )
    except (ValueError, TypeError, ImportError, FileNotFoundError) as err:
        raise _fail(" ".join(str(err).split())) from None
    except RuntimeError as err:  # torch's numerical failures (e.g. an eigensolver on a non-finite kernel)
        raise _fail(f"audit failed: {type(err).__name__}: {' '.join(str(err).split())}") from None
    from tangentlab.auditing._render import render_table, write_outputs

    out_dir = out if out is not None else Path("results") / f"audit_{factory.rpartition(':')[2]}"
    json_path, html_path = write_outputs(
        result, out_dir, command=_audit_command(factory, data, optimizer.value, steps, lr)
    )
    typer.echo(render_table(result))
    _say(f"wrote {json_path} and {html_path}")


def _check_device(device: str, *, local: bool = True) -> None:
    """Exit 2 before any work when ``--device`` is not a device (or, ``local``, not one this machine has)."""
    try:
        check_device(device, local=local)
    except ValueError as err:
        raise _fail(str(err)) from None


def _audit_command(factory: str, data: str, optimizer: str, steps: int, lr: float | None) -> str:
    lr_text = "" if lr is None else f" --lr {lr:g}"
    return f"tangentlab audit {factory} --data {data} --optimizer {optimizer} --steps {steps}{lr_text} ..."


def _stored(out_dir: Path) -> list[StoredRun]:
    with _opened(out_dir) as store:
        return store.runs()


def _opened(out_dir: Path) -> ResultStore:
    """The folder's store, read-only; a missing or corrupt database exits 2 with what to do."""
    try:
        return ResultStore(out_dir)
    except (FileNotFoundError, StoreError) as err:
        raise _fail(str(err)) from None


def main() -> None:
    """The console entry point; the only place that selects a matplotlib backend (non-interactive Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    app(prog_name="tangentlab")


if __name__ == "__main__":  # pragma: no cover
    main()
