"""`plan`: capacity by bisection on rate against a closed form, sizing, the cheapest choice on a hand-made
two-option space, the written files, and the command's errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sim.loader import load_scenario_dict, read_yaml
from sim.plan.capacity import bisect_capacity, smallest_passing
from sim.plan.cli import main
from sim.plan.prices import PriceTable, load_prices
from sim.plan.search import attainment_of, probe_raw, run_plan
from sim.resolve import resolve
from sim.run import run_simulation
from tests.helpers import scenario_dict, write_trace

STEP_S = 0.01  # constant step time
OUTPUT = 10  # tokens per request: one prefill step (first token) + 9 decode steps
TTFT_S = 0.5
PROBE_REQUESTS = 400

BASE = {
    "name": "two_options",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "num_requests": 400,
    "workload": {
        "lengths": {"kind": "fixed", "input_len": 16, "output_len": OUTPUT},
        "arrivals": {"process": "constant", "rate": 1},
    },
    # One request at a time: a D/D/1 queue with service time OUTPUT x STEP_S.
    "engine": {"max_num_seqs": 1, "max_model_len": 2048},
    "slo": {"ttft_ms": TTFT_S * 1e3, "tpot_ms": 1000},
    "cost_model": {"kind": "constant", "step_s": STEP_S},
    "plan": {
        "space": {
            "option": {
                "fast_dear": {"hardware": "h100", "cost_model": {"kind": "constant", "step_s": STEP_S}},
                "slow_cheap": {"hardware": "l4", "cost_model": {"kind": "constant", "step_s": 2 * STEP_S}},
            }
        },
        "probe_requests": PROBE_REQUESTS,
        "risk_runs": 0,
    },
}
PRICES = PriceTable.model_validate(
    {
        "prices": {
            "h100": {"on_demand": 10.0, "source": "test", "as_of": "test"},
            "l4": {"on_demand": 7.0, "committed": 5.0, "source": "test", "as_of": "test"},
        }
    }
)


def dd1_capacity(step_s: float, attainment: float, n: int) -> float:
    """Highest rate at which >= attainment of n evenly spaced requests meet the TTFT SLO on a D/D/1 server
    with service S = OUTPUT x step_s. Above 1/S request k waits k (S - 1/r); it is good while
    k (S - 1/r) + step_s <= TTFT, so ceil(attainment n) good ones need K = ceil(attainment n) - 1 to pass:
    r* = 1 / (S - (TTFT - step_s) / K)."""
    service = OUTPUT * step_s
    k = math.ceil(attainment * n) - 1
    return 1.0 / (service - (TTFT_S - step_s) / k)


def test_bisection_brackets_a_step_function_within_tolerance():
    search = bisect_capacity(lambda r: 1.0 if r <= 7.3 else 0.0, 0.9, start_rps=1.0, rel_tol=0.01)
    assert search.rate_rps <= 7.3 < search.fail_rps
    assert search.fail_rps - search.rate_rps <= 0.01 * search.rate_rps
    assert bisect_capacity(lambda r: 0.0, 0.9).rate_rps == 0.0
    assert bisect_capacity(lambda r: 1.0, 0.9, max_rps=100).capped


def test_smallest_passing_replica_count():
    calls = []

    def meets(n):
        calls.append(n)
        return n >= 13

    assert smallest_passing(meets, 3, 64) == 13
    assert len(calls) < 10  # doubling then bisection, not a linear walk
    assert smallest_passing(lambda n: False, 3, 8) is None
    assert smallest_passing(lambda n: True, 3, 8) == 3


@pytest.mark.parametrize("attainment", [0.9, 0.5])
def test_capacity_of_a_dd1_replica_matches_the_closed_form(attainment):
    raw = {k: v for k, v in BASE.items() if k != "plan"}

    def attains(rate):
        probe = load_scenario_dict(probe_raw(raw, rate, PROBE_REQUESTS))
        return attainment_of(run_simulation(resolve(probe)))

    expected = dd1_capacity(STEP_S, attainment, PROBE_REQUESTS)
    assert attains(expected * 0.995) >= attainment > attains(expected * 1.005)  # the closed form is right
    search = bisect_capacity(attains, attainment, start_rps=1.0, rel_tol=0.02)
    assert search.rate_rps <= expected <= search.fail_rps
    assert search.fail_rps - search.rate_rps <= 0.02 * search.rate_rps


def test_cheapest_of_two_options_by_hand():
    """fast_dear: capacity ~10.1 req/s -> 3 replicas x $10 = $30/h. slow_cheap: ~5.03 req/s -> 5 replicas
    x $7 = $35/h: cheaper per chip, dearer per hour. Over a $32/h budget only fast_dear qualifies."""
    result = run_plan(BASE, Path("."), target_rps=25, attainment=0.9, prices=PRICES)
    rows = {r["candidate"]: r for r in result.table.to_dict("records")}
    fast, slow = rows["option=fast_dear"], rows["option=slow_cheap"]
    assert fast["replicas"] == 3 and slow["replicas"] == 5
    assert fast["usd_per_hour"] == pytest.approx(30.0) and slow["usd_per_hour"] == pytest.approx(35.0)
    assert (
        fast["replica_capacity_rps"] <= dd1_capacity(STEP_S, 0.9, PROBE_REQUESTS) <= fast["capacity_fail_rps"]
    )
    assert result.cheapest == "option=fast_dear"
    assert list(result.table["candidate"])[0] == "option=fast_dear"  # ranked cheapest first
    assert fast["usd_per_1m_good_requests"] == pytest.approx(30.0 / (fast["goodput_rps"] * 3600) * 1e6)
    # Pareto: slow_cheap costs more and sustains less (5 x 5.03 < 3 x 10.1): dominated.
    assert result.pareto == ["option=fast_dear"]
    budgeted = run_plan(BASE, Path("."), target_rps=25, attainment=0.9, prices=PRICES, budget_usd_per_hour=32)
    assert budgeted.cheapest == "option=fast_dear"
    assert not budgeted.table.set_index("candidate").loc["option=slow_cheap", "within_budget"]


def test_plan_command_writes_ranked_tables_pareto_and_a_ready_scenario(tmp_path):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(yaml.safe_dump(BASE))
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump(PRICES.model_dump()))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [str(scenario), "--target-rate", "25", "--prices", str(prices), "--out", str(out), "--jobs", "1"],
    )
    assert result.exit_code == 0, result.output
    for name in ("plan.csv", "plan.md", "plan.json", "pareto.png", "best.yaml"):
        assert (out / name).stat().st_size > 0
    best = read_yaml(out / "best.yaml")
    assert best["fleet"]["replicas"] == 3 and best["fleet"]["usd_per_chip_hour"] == 10.0
    assert best["workload"]["arrivals"]["rate"] == 25 and "plan" not in best
    assert "monte_carlo" not in best  # the user's own block (none here), not the search's runs=1
    rerun = run_simulation(resolve(load_scenario_dict(best)))  # the winner runs as written
    assert attainment_of(rerun) >= 0.9


def test_ready_scenario_paths_work_from_the_results_folder(tmp_path):
    """best.yaml lives in the results folder: a profile named relative to the scenario must still load."""
    from sim.plan.search import CandidateJob, ready_scenario
    from sim.scenario_studies import PlanSpec

    raw = {**BASE, "profile": "../profiles/p.json"}
    job = CandidateJob("x", {}, raw, Path("scenarios"), 25.0, 0.9, PlanSpec())
    data = ready_scenario(job, {"replicas": 2}, 3.0, {"runs": 5})
    assert data["profile"] == str((Path("scenarios") / "../profiles/p.json").resolve())
    assert data["monte_carlo"] == {"runs": 5} and data["fleet"]["replicas"] == 2


def test_nothing_feasible_is_an_answer_with_reasons():
    data = {**BASE, "plan": {**BASE["plan"], "max_replicas": 2}}
    result = run_plan(data, Path("."), target_rps=25, attainment=0.9, prices=PRICES)
    assert result.cheapest is None and result.pareto == [] and not result.scenarios
    assert all("plan.max_replicas" in reason for reason in result.table["reason"])


def test_plan_command_errors_are_one_line_exit_2(tmp_path):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "plan"}))
    runner = CliRunner()
    result = runner.invoke(main, [str(scenario), "--target-rate", "25"])
    assert result.exit_code == 2 and "no plan block" in result.output
    scenario.write_text(yaml.safe_dump(BASE))
    result = runner.invoke(main, [str(scenario), "--target-rate", "0"])
    assert result.exit_code == 2 and "--target-rate" in result.output


def test_a_candidate_without_a_price_is_ranked_without_cost_and_said_so():
    """l4 has a committed price, h100 none: plan still answers, h100 last among the feasible, no $ figures."""
    result = run_plan(BASE, Path("."), target_rps=25, attainment=0.9, prices=PRICES, pricing="committed")
    rows = {r["candidate"]: r for r in result.table.to_dict("records")}
    unpriced = rows["option=fast_dear"]
    assert math.isnan(unpriced["usd_per_hour"]) and unpriced["price_source"].startswith("no price")
    assert rows["option=slow_cheap"]["usd_per_hour"] == pytest.approx(5 * 5.0)
    assert list(result.table["candidate"]) == ["option=slow_cheap", "option=fast_dear"]
    assert result.cheapest == "option=slow_cheap" and result.pareto == ["option=slow_cheap"]
    assert len(result.warnings) == 1 and "no committed price for hardware 'h100'" in result.warnings[0]
    assert "usd_per_chip_hour" not in result.scenarios["option=fast_dear"]["fleet"]


def test_shipped_price_table_cites_every_price():
    table = load_prices()
    for name, entry in table.prices.items():
        assert entry.source.startswith("https://") and entry.as_of, name


def test_a_candidate_with_a_trace_workload_is_infeasible_with_the_reason(tmp_path):
    """plan scales the arrival rate; a candidate whose workload is a recorded trace cannot be scaled."""
    trace = write_trace(tmp_path / "t.csv", [(0.1, 100, 10), (0.2, 100, 10)])
    data = scenario_dict(
        cost_model={"kind": "constant", "step_s": 0.01},
        plan={
            "space": {
                "workload": {
                    "poisson": {},
                    "trace": {"workload": {"lengths": {"kind": "trace", "path": str(trace)}}},
                }
            },
            "probe_requests": 50,
            "risk_runs": 0,
        },
    )
    result = run_plan(data, tmp_path, target_rps=5, attainment=0.5, prices=load_prices(None))
    rows = result.table.set_index("candidate")
    assert not rows.loc["workload=trace", "feasible"]
    assert "no workload.arrivals" in rows.loc["workload=trace", "reason"]
