"""Kinds come from registries: adding one is one entry, and the schema accepts and lists it."""

from __future__ import annotations

import json

import pytest

from sim.errors import InputError
from sim.hardware_kinds import HARDWARE_KINDS, BatchDefaults, HardwareKind, KVSizing
from sim.loader import load_scenario_dict
from sim.scenario import Scenario
from tests.helpers import scenario_dict, simulate_dict

# A made-up accelerator, as a user would add one: a datasheet (a catalog entry, inline here) ...
NPU = {
    "name": "Example NPU 64GB",
    "kind": "npu",
    "source": "test datasheet (made up for this test)",
    "peak_bf16_tflops": 400.0,
    "memory_bytes": 64 * 10**9,
    "memory_bandwidth_gbs": 2000.0,
    "chips_per_host": 4,
    "links": {"pcie_gen5": 63},
}
# ... and one row in the hardware-kind table: served by the CUDA path, vLLM's GPU-style defaults, and the
# gpu sections of the catalog's efficiency and start-up defaults.
NPU_KIND = HardwareKind(
    name="npu",
    runtimes=("cuda",),
    batch_defaults=lambda hw: BatchDefaults(4096, 128, "test: the kind's own defaults"),
    block_size=lambda max_model_len: (32, "test: the kind's own page size"),
    kv_sizing=KVSizing.PROFILED,
    catalog_section="gpu",
)


def test_a_new_hardware_kind_is_a_catalog_entry_plus_one_table_row(monkeypatch):
    data = scenario_dict(hardware=NPU)
    with pytest.raises(InputError, match="unknown hardware kind 'npu'"):
        load_scenario_dict(data)
    monkeypatch.setitem(HARDWARE_KINDS, "npu", NPU_KIND)
    result = simulate_dict(data)
    engine = result.resolved.engine
    assert (engine.max_num_batched_tokens, engine.max_num_seqs, engine.block_size) == (4096, 128, 32)
    assert result.resolved.provenance["engine.block_size"] == "test: the kind's own page size"
    assert result.runtime is not None and result.runtime.name == "cuda"
    assert result.summary["completed"] == 50
    schema = json.dumps(Scenario.model_json_schema(by_alias=True))
    assert '"npu"' in schema  # the schema lists registry keys when it is made


def test_a_runtime_must_serve_the_kind():
    with pytest.raises(InputError) as err:
        load_and_resolve(scenario_dict(engine={"runtime": "xla", "max_model_len": 8192}))
    assert err.value.field == "engine.runtime"


def test_routers_and_policies_are_checked_against_their_registries():
    with pytest.raises(
        InputError, match="unknown router 'random'; known: cheapest_first, least_kv, least_outstanding"
    ):
        load_scenario_dict(scenario_dict(fleet={"router": "random"}))
    scaler = {"policy": "cpu_load", "target": 1, "max_replicas": 2}
    with pytest.raises(InputError, match="unknown autoscaler policy 'cpu_load'"):
        load_scenario_dict(scenario_dict(autoscaler=scaler))


def load_and_resolve(data: dict):
    from sim.resolve import resolve

    return resolve(load_scenario_dict(data))


def test_every_hardware_kind_has_its_catalog_defaults():
    """Each kind's catalog sections hold every factor the cost models and start-up read (a misindented
    entry once hid the TPU's engine_overhead_s)."""
    from sim import catalog

    efficiency = catalog.efficiency_defaults()
    provision = catalog.runtime_defaults()["startup"]["provision_s"]
    factors = {"memory_bandwidth_utilization", "flops_utilization", "step_overhead_s", "engine_overhead_s"}
    for kind in HARDWARE_KINDS.values():
        section = efficiency[kind.catalog_section]
        assert factors <= set(section), f"{kind.name}: missing {factors - set(section)}"
        for name in factors:
            assert {"value", "provenance", "source"} <= set(section[name]), f"{kind.name}.{name}"
        assert kind.catalog_section in provision
        assert set(kind.runtimes) <= set(_runtimes())


def _runtimes():
    from sim.runtime.settings import RUNTIMES

    return RUNTIMES
