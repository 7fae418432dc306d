"""The Ray executor (a real local Ray with 2 CPUs) against the local one: same runs, same ids, same numbers."""

import pytest
import ray

from tangentlab.runner import ResultStore, load_sweep, run_sweep
from tangentlab.studies import get_study
from tests.runner.conftest import write_sweep


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def stored(out):
    with ResultStore(out) as store:
        return {row.run_id: (row.status, row.metrics) for row in store.runs()}


def test_ray_matches_local_and_workers_do_not_change_identity(tmp_path, local_ray):
    _, study, runs = load_sweep(write_sweep(tmp_path, grid={"width": [2, 3, 5]}), get_study)
    run_sweep(study, runs, tmp_path / "serial", progress=False)
    run_sweep(study, runs, tmp_path / "pool", workers=2, progress=False)
    summary = run_sweep(study, runs, tmp_path / "ray", executor="ray", progress=False)
    assert summary.ok and summary.done == len(runs) == 6
    serial, pool, on_ray = stored(tmp_path / "serial"), stored(tmp_path / "pool"), stored(tmp_path / "ray")
    assert set(serial) == {r.run_id for r in runs}
    assert serial == pool == on_ray  # same ids, all done, bit-identical float64 metrics
    assert ray.is_initialized()  # a Ray the caller started is left running
