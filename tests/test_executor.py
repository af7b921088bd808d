"""Executors: the same runs give the same answers wherever they execute -- in this process, in local worker
processes, or as Ray tasks on a local Ray instance (2 CPUs, started by the test)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.errors import InputError
from sim.executor import LocalExecutor, make_executor
from sim.risk.study import run_study
from sim.sweep import run_sweep
from tests.helpers import scenario_dict


def _square(x: int) -> int:
    return x * x


def _study_file(tmp_path: Path) -> Path:
    data = scenario_dict(
        num_requests=120,
        workload={"lengths": {"kind": "sharegpt_like", "max_prompt_len": 1024}, "arrivals": {"rate": 8}},
        variants={"two_replicas": {"fleet.replicas": 2}},
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep_file(tmp_path: Path) -> Path:
    data = scenario_dict(num_requests=80, sweep={"grid": {"workload.arrivals.rate": [4, 8]}})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_local_executor_keeps_item_order_and_reports_progress():
    seen = []
    results = LocalExecutor(2).map(
        _square, [3, 1, 2], labels=["a", "b", "c"], progress=lambda d, t, label: seen.append((d, t))
    )
    assert results == [9, 1, 4]
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)


def test_executor_choice_errors_are_input_errors():
    with pytest.raises(InputError, match="unknown executor"):
        make_executor("slurm")
    with pytest.raises(InputError, match="only the Ray executor"):
        make_executor("local", address="auto")


def _digest_frame(study) -> pd.DataFrame:
    return pd.DataFrame([{"label": d.label, "run": d.run, **d.metrics} for d in study.digests])


def test_study_results_do_not_depend_on_the_number_of_local_processes(tmp_path):
    path = _study_file(tmp_path)
    one = run_study(path, runs=2, executor=LocalExecutor(1))
    two = run_study(path, runs=2, executor=LocalExecutor(2))
    pd.testing.assert_frame_equal(_digest_frame(one), _digest_frame(two), check_exact=True)


# ray.init starts its daemons with subprocess (fork, then exec at once): harmless beside JAX's threads, which
# an earlier test may have started in this process.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_ray_and_local_execution_give_identical_results(tmp_path):
    pytest.importorskip("ray", reason="needs servesim[ray]")
    study_path, sweep_path = _study_file(tmp_path), _sweep_file(tmp_path)
    local_study = run_study(study_path, runs=2, executor=LocalExecutor(1))
    local_sweep = run_sweep(sweep_path, executor=LocalExecutor(1))
    ray_executor = make_executor("ray", jobs=2)
    try:
        seen = []
        ray_study = run_study(
            study_path, runs=2, executor=ray_executor, progress=lambda d, t, label: seen.append(d)
        )
        ray_sweep = run_sweep(sweep_path, executor=ray_executor)
    finally:
        ray_executor.close()
    assert seen[-1] == len(ray_study.digests) == 2  # progress works with Ray too
    pd.testing.assert_frame_equal(_digest_frame(local_study), _digest_frame(ray_study), check_exact=True)
    pd.testing.assert_frame_equal(local_sweep.table, ray_sweep.table, check_exact=True)
    assert [o.summary for o in local_sweep.outcomes] == [o.summary for o in ray_sweep.outcomes]
