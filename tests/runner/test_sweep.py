"""Sweeps: results and artifacts in the store, skipping what is done, failures recorded, retries."""

import numpy as np

from tangentlab.runner import ResultStore, load_sweep, run_sweep
from tangentlab.studies import get_study
from tests.runner.conftest import write_sweep
from tests.runner.toy_study import ToyStudy


def test_sweep_stores_metrics_artifacts_and_environment_then_skips_done(tmp_path):
    _, study, runs = load_sweep(write_sweep(tmp_path), get_study)
    summary = run_sweep(study, runs, tmp_path / "out", progress=False)
    assert (summary.total, summary.skipped, summary.done, summary.ok) == (4, 0, 4, True)
    with ResultStore(tmp_path / "out") as store:
        stored = {row.run_id: row for row in store.runs()}
    assert set(stored) == {r.run_id for r in runs}
    for run in runs:
        row, want = stored[run.run_id], ToyStudy().run(run)
        assert row.status == "done" and row.config == run and row.error is None
        assert row.metrics == want.metrics
        assert row.artifacts_dir is not None
        np.testing.assert_array_equal(np.load(row.artifacts_dir / "weights.npy"), want.artifacts["weights"])
        assert row.environment["tangentlab"] and row.environment["device"] == "cpu"
        assert {"python", "torch", "hostname", "git_commit"} <= set(row.environment)
        assert row.seconds is not None and row.started and row.finished
    again = run_sweep(study, runs, tmp_path / "out", progress=False)
    assert (again.skipped, again.done) == (4, 0)


def test_failure_is_recorded_sweep_goes_on_and_retry_reruns_it(tmp_path):
    marker = tmp_path / "fail-while-here"
    marker.write_text("")
    path = write_sweep(tmp_path, grid={"width": [2, 3], "fail_marker": ["", str(marker)]}, seeds=1)
    _, study, runs = load_sweep(path, get_study)
    out = tmp_path / "out"
    summary = run_sweep(study, runs, out, progress=False)
    assert summary.done == 2 and len(summary.failed) == 2 and not summary.ok
    with ResultStore(out) as store:
        failed = [row for row in store.runs() if row.status == "failed"]
    assert {row.config.params["fail_marker"] for row in failed} == {str(marker)}
    assert all("RuntimeError: toy failure requested" in (row.error or "") for row in failed)
    assert all("Traceback" in (row.error or "") and row.artifacts_dir is None for row in failed)

    marker.unlink()
    skipped = run_sweep(study, runs, out, progress=False)  # failed runs are skipped without retry_failed
    assert (skipped.skipped, skipped.done, len(skipped.failed_before)) == (4, 0, 2)
    retried = run_sweep(study, runs, out, retry_failed=True, progress=False)
    assert (retried.skipped, retried.done, retried.ok) == (2, 2, True)
    with ResultStore(out) as store:
        assert {row.status for row in store.runs()} == {"done"}
        assert all(row.error is None for row in store.runs())


def test_runs_left_running_are_run_again(tmp_path):
    _, study, runs = load_sweep(write_sweep(tmp_path), get_study)
    out = tmp_path / "out"
    with ResultStore(out, writable=True) as store:
        store.mark_running(runs[:2])  # as if the driver had been killed
        (store.artifacts_root / ".tmp-leftover").mkdir()
    summary = run_sweep(study, runs, out, progress=False)
    assert (summary.skipped, summary.done) == (0, 4)
    assert not list((out / "artifacts").glob(".tmp-*"))
