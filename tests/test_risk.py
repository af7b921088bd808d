"""Monte Carlo studies and variants: determinism per base seed, intervals, the objective, the tables."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.report.files import write_results
from sim.report.study import side_by_side, write_study
from sim.risk.objective import attainment_series, judge
from sim.risk.stats import mean_interval, wilson_interval
from sim.risk.study import run_study
from sim.scenario_studies import ObjectiveSpec
from tests.helpers import scenario_dict

SMALL = scenario_dict(
    cost_model={"kind": "constant", "step_s": 0.02},
    workload={
        "lengths": {"kind": "random", "input_len": 64, "output_len": 32, "range_ratio": 0.5},
        "arrivals": {"process": "gamma", "rate": 20, "burstiness": 0.5},
    },
    fleet={"replicas": 2, "router": "least_outstanding"},
    faults={"chip_failures": {"mtbf_h": 0.01}, "detection_s": 2},
    startup={"provision_s": 5, "container_start_s": 2},
    slo={"ttft_ms": 200, "tpot_ms": 40},
    monte_carlo={"objective": {"window_s": 5, "min_attainment": 0.9, "max_breach_s": 5}},
)
SMALL.pop("num_requests")
SMALL["duration_s"] = 60


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_monte_carlo_is_deterministic_per_base_seed_and_independent_of_workers(tmp_path):
    path = write(tmp_path, SMALL)
    one = run_study(path, runs=4, jobs=1)
    again = run_study(path, runs=4, jobs=1)
    parallel = run_study(path, runs=4, jobs=2)
    pd.testing.assert_frame_equal(one.runs_table(), again.runs_table())
    pd.testing.assert_frame_equal(one.runs_table(), parallel.runs_table())
    assert one.runs_table()["seed"].tolist() == [0, 1, 2, 3]
    other = run_study(path, runs=4, jobs=1, seed=100)
    assert not one.runs_table()["goodput_rps"].equals(other.runs_table()["goodput_rps"])


def test_confidence_interval_shrinks_with_more_runs(tmp_path):
    path = write(tmp_path, SMALL)
    widths = {}
    for runs in (4, 16):
        agg = run_study(path, runs=runs, jobs=1).aggregate().set_index("metric")
        widths[runs] = agg.loc["goodput_rps", "ci_high"] - agg.loc["goodput_rps", "ci_low"]
    assert widths[16] < widths[4]


def test_variants_give_one_row_each_and_their_own_result_folders(tmp_path):
    data = dict(
        SMALL, variants={"small_steps": {"cost_model.step_s": 0.01}, "big_steps": {"cost_model.step_s": 0.05}}
    )
    path = write(tmp_path, data)
    out = tmp_path / "out"
    write_run = partial(write_results, per_request=False, plot=False)
    study = run_study(path, runs=1, jobs=1, out_dir=out, write_run=write_run)
    table = side_by_side(study)
    assert table["variant"].tolist() == ["small_steps", "big_steps"]
    assert (out / "small_steps" / "summary.json").exists() and (out / "big_steps" / "requests.csv").exists()
    written = {p.name for p in write_study(study, out, plot=True)}
    assert {
        "runs.csv",
        "aggregate.csv",
        "risk.csv",
        "variants.md",
        "fan_chart.png",
        "replicas.png",
    } <= written
    runs = study.runs_table().set_index("variant")
    assert runs.loc["small_steps", "ttft_p99_ms"] < runs.loc["big_steps", "ttft_p99_ms"]


def test_a_bad_variant_names_itself(tmp_path):
    from sim.errors import InputError

    data = dict(SMALL, variants={"broken": {"fleet.replicas": 0}})
    with pytest.raises(InputError, match="variant 'broken'.*fleet.replicas"):
        run_study(write(tmp_path, data), runs=1, jobs=1)


def test_wilson_and_t_intervals_match_hand_values():
    # Wilson, 95%: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634] (standard tables)
    p, low, high = wilson_interval(0, 10, 0.95)
    assert p == 0 and low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    _, low, high = wilson_interval(5, 10, 0.95)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    # t interval of [1, 2, 3]: mean 2, s = 1, t(0.975, 2) = 4.3027 -> 2 +- 2.4841
    mean, low, high = mean_interval([1, 2, 3], 0.95)
    assert mean == 2 and high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)


def test_objective_counts_consecutive_breach_and_recovery():
    table = pd.DataFrame({"arrival_s": np.arange(0, 100, 1.0)})
    good = np.ones(100, dtype=bool)
    good[20:45] = False  # windows 2, 3 and half of 4 bad
    series = attainment_series(table, good, 10.0, 100.0)
    assert series.attainment[2] == 0 and series.attainment[4] == 0.5
    verdict = judge(series, 0, ObjectiveSpec(window_s=10, min_attainment=0.9, max_breach_s=20))
    assert verdict.longest_breach_s == 30 and verdict.time_to_recover_s == 30 and verdict.breached
    ok = judge(series, 0, ObjectiveSpec(window_s=10, min_attainment=0.9, max_breach_s=30))
    assert not ok.breached
    failed = judge(series, 1, ObjectiveSpec(window_s=10, min_attainment=0.4, max_breach_s=30))
    assert failed.breached and "failed" in failed.reason


def test_intervals_stay_inside_the_metrics_range():
    from sim.risk.stats import mean_interval
    from sim.risk.study import metric_range

    mean, low, high = mean_interval([0.70, 1.0, 1.0, 1.0], 0.95, metric_range("slo_attainment_all"))
    assert mean == pytest.approx(0.925) and high == 1.0 and 0.0 <= low < mean
    mean, low, high = mean_interval([0.0, 0.0, 0.0, 600.0], 0.95, metric_range("peak_waiting"))
    assert low == 0.0 and high > mean
    assert mean_interval([0.70, 1.0, 1.0, 1.0], 0.95)[2] > 1.0  # unbounded, the plain t interval passes 100%
