"""`profile: auto`: the shipped profile of a scenario's configuration, or the datasheet roofline, said so."""

from __future__ import annotations

import pytest

from sim.loader import load_scenario_dict
from sim.profile import load_profile
from sim.resolve import resolve
from sim.shipped_profiles import SHIPPED_DIR, profile_file_name
from tests.helpers import scenario_dict


def _resolve(**overrides):
    return resolve(load_scenario_dict(scenario_dict(**overrides)))


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_profile_is_valid_and_named_for_what_it_prices(path):
    profile = load_profile(path)
    if profile.steps is None:
        return  # compile-only profiles (TPU AOT) are named by hand and never picked by auto
    steps = profile.steps
    kv = steps.kv_cache_dtype or "auto"
    name = profile_file_name(profile.hardware, profile.model, steps.tensor_parallel_size, steps.dtype, kv)
    assert path.name == name
    assert steps.fit.quality.num_test > 0 and steps.provenance.date


def test_auto_picks_the_shipped_profile_of_the_configuration():
    r = _resolve()  # llama-3.1-8b on h100, TP1, bf16
    assert r.step_times == "kernel tables"
    assert r.provenance["profile"] == "auto: shipped profiles/h100-llama-3.1-8b.json"
    assert "composed by calibrate from measured kernel tables" in r.provenance["cost.step_times"]
    fp8 = _resolve(hardware="h200", engine={"max_model_len": 8192, "weight_dtype": "fp8"})
    assert fp8.provenance["profile"] == "auto: shipped profiles/h200-llama-3.1-8b-fp8.json"
    assert fp8.profile is not None and fp8.profile.steps.dtype == "fp8"


def test_without_a_shipped_profile_the_roofline_is_named_as_such():
    r = _resolve(hardware="l4")
    assert r.profile is None and r.step_times == "datasheet roofline"
    assert "no shipped profile profiles/l4-llama-3.1-8b.json" in r.provenance["profile"]
    assert "uncalibrated" in r.provenance["profile"]
    none = _resolve(profile="none")
    assert none.profile is None and none.step_times == "datasheet roofline"
    constant = _resolve(cost_model={"kind": "constant", "step_s": 0.01})
    assert constant.profile is None and constant.step_times == "constant (scenario)"


def test_summary_and_console_name_the_step_times(tmp_path):
    from click.testing import CliRunner

    from sim.cli import main

    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: s\nmodel: llama-3.1-8b\nhardware: l4\nnum_requests: 20\nengine: {max_model_len: 4096}\n"
        "workload: {lengths: {kind: fixed, input_len: 64, output_len: 8}, arrivals: {rate: 2}}\n"
    )
    result = CliRunner().invoke(main, [str(scenario), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "step times: datasheet roofline" in result.output
    doc = (tmp_path / "o" / "summary.json").read_text()
    assert '"step_times": "datasheet roofline"' in doc
