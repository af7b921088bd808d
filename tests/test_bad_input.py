"""Bad input never crashes, escapes --out or runs away: every case below exits 2 with one line, and a seeded
fuzz of the shipped scenarios either loads or fails that way (and what loads keeps the invariants)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from sim.cli import main as simulate_main
from sim.errors import InputError
from sim.loader import load_scenario_dict, read_yaml
from sim.resolve import resolve
from sim.run import run_simulation

ROOT = Path(__file__).resolve().parent.parent
STEADY = yaml.safe_load((ROOT / "scenarios" / "steady_8b_h100.yaml").read_text())


def _simulate(tmp_path, data_or_bytes, *extra):
    path = tmp_path / "s.yaml"
    if isinstance(data_or_bytes, bytes | str):
        path.write_bytes(data_or_bytes if isinstance(data_or_bytes, bytes) else data_or_bytes.encode())
    else:
        path.write_text(yaml.safe_dump(data_or_bytes, allow_unicode=True))
    return CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "out"), *extra])


def _with(**changes):
    data = copy.deepcopy(STEADY)
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split("__")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return data


ONE_LINE_CASES = {
    "not utf-8": (b"\xff\xfe\x00binary", "not UTF-8"),
    "deep nesting": ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nests deeper"),
    "bad yaml": ("name: [unclosed\nmodel: x\n", "line 2, column 6"),
    "inf activation reserve": (_with(engine__activation_reserve_gib=math.inf), "finite"),
    "huge kv space": (_with(engine__kv_cache_space_gib=1e308), "less than or equal"),
    "inf duration": (_with(duration_s=math.inf), "finite"),
    "huge duration": (_with(duration_s=1e12), "less than or equal"),
    "too many requests": (_with(num_requests=10**10), "limits.max_requests"),
    "inf spike": (
        _with(workload__arrivals__spikes=[{"start_s": 1, "duration_s": 2, "multiplier": math.inf}]),
        "finite",
    ),
    "nul in profile path": (_with(profile="a\x00b.json"), "NUL"),
    "nul in trace path": (_with(workload={"lengths": {"kind": "trace", "path": "t\x00.csv"}}), "NUL"),
    "variant named ..": (_with(variants={"..": {}}), "not start with '.'"),
    "variant named .": (_with(variants={".": {}}), "not start with '.'"),
    "tiny metrics window": (_with(metrics={"window_s": 1e-6}), "greater than or equal"),
    "tiny autoscaler interval": (
        _with(autoscaler={"policy": "target_inflight", "target": 4, "max_replicas": 4, "interval_s": 1e-6}),
        "greater than or equal",
    ),
}


@pytest.mark.parametrize("case", list(ONE_LINE_CASES), ids=list(ONE_LINE_CASES))
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    document, message = ONE_LINE_CASES[case]
    result = _simulate(tmp_path, document)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "summary.json").exists()


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    result = _simulate(tmp_path, "\n".join(["name: bomb", *levels]) + "\n")
    assert result.exit_code == 2 and "expands to more than" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}"], "is a directory"),
        (["{scenario}", "--seed", "abc"], "not a valid integer"),
        (["{scenario}", "--out", "{file}"], "is a file"),
        (["{scenario}", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, args, message):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(STEADY))
    (tmp_path / "f").write_text("x")
    argv = [a.format(tmp=tmp_path, scenario=scenario, file=tmp_path / "f") for a in args]
    result = CliRunner().invoke(simulate_main, argv)
    assert result.exit_code == 2 and message in result.output
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1


def test_a_study_with_an_unwritable_out_stops_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    data = _with(variants={"a": {}, "b": {"fleet.replicas": 2}}, num_requests=20)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(simulate_main, [str(path), "--out", str(blocker / "sub")])
    assert result.exit_code == 2 and "--out: cannot write" in result.output


# ---- fuzz ------------------------------------------------------------------------------------------------

SHIPPED = [
    yaml.safe_load(p.read_text())
    for p in sorted((ROOT / "scenarios").glob("*.yaml"))
    if "trace" not in p.read_text() and "sweep:" not in p.read_text()
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@seed(20261129)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_fuzzed_scenarios_load_or_fail_with_one_line_and_keep_the_invariants(base, data):
    doc = copy.deepcopy(base)
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = data.draw(VALUES)
    doc.pop("variants", None)
    doc.pop("pools", None)
    doc.pop("disaggregation", None)
    doc["num_requests"] = 20
    doc.pop("duration_s", None)
    try:
        resolved = resolve(load_scenario_dict(doc))
    except InputError as err:
        assert "\n" not in str(err)
        return
    result = run_simulation(resolved)
    s = result.summary
    assert s["completed"] + s["failures"] == s["total_requested"]
    assert s["goodput_rps"] <= s["request_throughput_rps"] + 1e-9
    for key in ("ttft_ms_median", "tpot_ms_median", "e2e_ms_median"):
        value = s[key]
        assert value is None or math.isnan(value) or value >= 0


def test_read_yaml_names_the_file_for_a_missing_or_directory_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory"):
        read_yaml(tmp_path)


def test_outputs_capped_by_max_model_len_are_counted_once(tmp_path):
    from tests.helpers import scenario_dict, simulate_dict

    data = scenario_dict(
        engine={"max_model_len": 512},
        workload={"lengths": {"kind": "fixed", "input_len": 400, "output_len": 300}, "arrivals": {"rate": 5}},
        num_requests=10,
    )
    result = simulate_dict(data)
    assert (result.table["output_tokens"] == 112).all()  # 512 - 400
    assert [w for w in result.warnings if "caps such outputs" in w] == [
        "10 requests asked for more output than max_model_len (512) leaves after their prompt; vLLM caps such "
        "outputs, and so did the simulation"
    ]
