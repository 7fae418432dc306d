"""Issue 15, items 11-13: one-line errors (exit 2, file and field named) before any work, instead of tracebacks
or silent NaN kernels."""

from __future__ import annotations

import errno
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tangentlab
from tangentlab import arch
from tangentlab.cli import app
from tangentlab.runner import StoreError, load_sweep, run_sweep
from tangentlab.studies import get_study
from tests.integrity.conftest import TOY

runner = CliRunner()

BASE = f"""\
study: {TOY}
data: {{name: synthetic, n_train: 8, n_test: 8}}
grid: {{width: [2, 3]}}
"""


def _run(tmp_path: Path, text: str, *extra: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", *extra])
    return path, result


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "field", "detail"),
    [
        (
            BASE.replace("n_train: 8", "n_train: 2000").replace("synthetic", "digits"),
            "data.n_train",
            "exceeds the 1797",
        ),
        (BASE + "train: {learning_rate: .inf}\n", "train.learning_rate", "finite"),
        (BASE + "seeds: []\n", "seeds", "non-empty list"),
        (BASE + "seeds: 2\nseeds: 3\n", "seeds", "duplicate key"),
        (BASE + "params: {ridge: 0.1, ridge: 0.2}\n", "ridge", "duplicate key"),
        (BASE.replace(TOY, ".foo:Bar"), "study", "cannot import '.foo:Bar'"),
        (BASE + ALIAS_BOMB, "(yaml)", "through aliases"),
    ],
)
def test_values_that_fail_every_run_are_refused_at_load(tmp_path, text, field, detail):
    """Item 11: exit 2, one line naming the file and the field, nothing computed."""
    path, result = _run(tmp_path, text)
    line = _one_line_exit_2(result)
    assert str(path) in line and f"'{field}'" in line and detail in line, line
    assert not (tmp_path / "out").exists()


def test_npz_sizes_are_checked_from_the_file_headers(tmp_path):
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(
        data,
        x_train=rng.random((10, 2)),
        y_train=rng.random(10),
        x_test=rng.random((4, 2)),
        y_test=rng.random(4),
    )
    _, result = _run(
        tmp_path,
        BASE.replace("synthetic", f"'npz:{data}'")
        .replace("n_test: 8", "n_test: 4")
        .replace("n_train: 8", "n_train: 11"),
    )
    assert "'data.n_train'" in _one_line_exit_2(result) and "exceeds the 10 examples" in result.output


def test_unavailable_device_is_refused_before_any_work(tmp_path):
    _, result = _run(tmp_path, BASE, "--device", "cuda:99")
    line = _one_line_exit_2(result)
    assert "--device: 'cuda:99' is not available on this machine; available here: cpu" in line
    _, result = _run(tmp_path, BASE, "--device", "warp-drive")
    assert "not a torch device" in _one_line_exit_2(result)
    _, result = _run(tmp_path, BASE, "--executor", "ray", "--gpus-per-run", "1.5")
    assert "--gpus-per-run: expected a fraction in (0, 1] or a whole number" in _one_line_exit_2(result)
    result = runner.invoke(
        app, ["audit", "tests.audit.models:tiny_mlp", "--data", "digits", "--device", "cuda:99"]
    )
    assert "--device: 'cuda:99' is not available on this machine" in _one_line_exit_2(result)
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_corrupt_store_says_what_to_do(tmp_path):
    """Item 12: a results.sqlite that is not a database."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is not a database" * 100)
    for command in (["results", str(out)], ["report", str(out)]):
        line = _one_line_exit_2(runner.invoke(app, command))
        assert "is not a readable results database" in line and "mv " in line
    _, result = _run(tmp_path, BASE)
    assert "is not a readable results database" in _one_line_exit_2(result)


def test_full_disk_names_the_folder(tmp_path, monkeypatch):
    """Item 12: writing an artifact fails with ENOSPC -> StoreError naming the folder; finished runs are kept."""
    path = tmp_path / "sweep.yaml"
    path.write_text(BASE)
    _, study, runs = load_sweep(path, get_study)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(StoreError, match=f"no space left on the device of {tmp_path / 'out'}"):
        run_sweep(study, runs, tmp_path / "out", progress=False)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out2"), "--no-progress"])
    assert "no space left on the device of" in _one_line_exit_2(result)


AUDIT_MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn

    def batchnorm(seed=0):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)).double()

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, x):
            return self.lin(x) * float("nan")

    def nan_outputs(seed=0):
        return NaNNet().double()

    def small(seed=0):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    """
)
AUDIT_ARGS = [
    "--data",
    "digits",
    "--steps",
    "3",
    "--n-train",
    "16",
    "--n-test",
    "16",
    "--probe",
    "4",
    "--seeds",
    "2",
]
AUDIT_ARGS += ["--checkpoints", "2", "--no-progress"]


@pytest.mark.parametrize(
    ("factory", "message"),
    [("batchnorm", "BatchNorm1d (1) in training mode"), ("nan_outputs", "returns NaN/inf outputs")],
)
def test_audit_of_a_model_it_cannot_measure_is_one_line(tmp_path, monkeypatch, factory, message):
    (tmp_path / "models.py").write_text(AUDIT_MODELS)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["audit", f"models.py:{factory}", *AUDIT_ARGS, "--out", "o"])
    assert message in _one_line_exit_2(result)


@pytest.mark.parametrize("out", [None, "relative/out"])
def test_audit_without_out_or_with_a_relative_out_writes_its_report(tmp_path, monkeypatch, out):
    (tmp_path / "models.py").write_text(AUDIT_MODELS)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["audit", "models.py:small", *AUDIT_ARGS, *(["--out", out] if out else [])])
    assert result.exit_code == 0, result.output
    folder = tmp_path / (out or "results/audit_small")
    assert (folder / "audit.json").is_file() and (folder / "report" / "index.html").is_file()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_kernels_refuse_non_finite_inputs_naming_the_argument(bad):
    """Item 13: a NaN kernel was returned silently."""
    net = arch.serial(arch.Dense(8), arch.ReLU(), arch.Dense(1))
    model = net.build((3,), seed=0, dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    y = x.clone()
    y[1, 2] = bad
    for call in (
        lambda: tangentlab.empirical_ntk(model, y),
        lambda: tangentlab.empirical_ntk(model, x, y),
        lambda: tangentlab.empirical_nngp(model, y),
        lambda: net.kernel(y),
        lambda: net.kernel(x, y),
    ):
        with pytest.raises(ValueError, match=r"^x[12]: expected finite inputs, got 1 NaN/inf value"):
            call()
    assert torch.isfinite(tangentlab.empirical_ntk(model, x)).all()  # finite inputs still work


def test_finite_inputs_whose_sum_overflows_are_accepted():
    """The input check sums first and counts only when the sum is not finite: a finite float32 batch whose sum
    overflows (two values of 3e38) must still pass, and a NaN among huge values must still be counted."""
    model = torch.nn.Linear(2, 1)
    x = torch.tensor([[3e38, 3e38], [1.0, -1.0]], dtype=torch.float32)
    assert torch.isinf(x.sum())
    assert tangentlab.empirical_ntk(model, x).shape == (2, 2)
    y = x.clone()
    y[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^x1: expected finite inputs, got 1 NaN/inf value"):
        tangentlab.empirical_ntk(model, y)
