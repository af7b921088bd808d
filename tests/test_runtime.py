"""CUDA and XLA runtime paths: padding, compile stalls, start-up sums, TP collectives."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cost.base import StepBatch
from sim.loader import load_scenario_dict
from sim.resolve import resolve
from sim.runtime.startup import startup_breakdown
from tests.helpers import scenario_dict, simulate_dict, write_trace

TPU = {  # the derived compile model, not a shipped profile's measured compile times
    "hardware": "tpu-v6e",
    "profile": "none",
    "engine": {"max_model_len": 2048, "max_num_batched_tokens": 512, "max_num_seqs": 8},
}


def runtime_for(**overrides):
    resolved = resolve(load_scenario_dict(scenario_dict(**overrides)))
    base = resolved.build_step_model()
    settings = resolved.runtime
    return resolved, base, settings, settings.build(base, 0, 0)


def test_cuda_decode_batch_of_9_runs_as_the_16_graph():
    _, base, settings, rt = runtime_for()
    batch = StepBatch(9, 9 * 100, (), (), 9)
    cost = rt.step_cost(batch)
    padded = base.parts(batch, 7, 7).device_s + base.overhead_s
    assert cost.padding_tokens == 7
    assert cost.seconds == pytest.approx(padded)
    assert cost.seconds > base.parts(batch, 0, 0).device_s + base.overhead_s


def test_cuda_mixed_and_eager_steps_pay_their_overheads():
    resolved, base, settings, rt = runtime_for()
    layers = resolved.model.num_layers
    mixed = StepBatch(5, 500, (100,), (100,), 6)  # 105 tokens -> piecewise graph at 112
    cost = rt.step_cost(mixed)
    assert cost.padding_tokens == 7
    assert cost.overhead_s == pytest.approx(base.overhead_s + 15e-6 * layers)
    big = StepBatch(0, 0, (2000,), (2000,), 1)  # above the largest capture size (512): eager, unpadded
    cost = rt.step_cost(big)
    assert cost.padding_tokens == 0
    assert cost.seconds == pytest.approx(base.parts(big, 0, 0).device_s + base.overhead_s + 40e-6 * layers)


def test_xla_padding_waste_by_hand(tmp_path):
    # One request, 100-token prompt, 3 outputs, buckets [16..512], request buckets [8]:
    # prefill 100 -> 128 (28 padding), two decode steps 1 -> 16 (15 each): 58 padding of 160 computed rows.
    trace = write_trace(tmp_path / "t.csv", [(0.0, 100, 3)])
    data = scenario_dict(**TPU)
    data["workload"] = {"lengths": {"kind": "trace", "path": str(trace)}}
    del data["num_requests"]
    res = simulate_dict(data)
    from sim.document import runtime_block

    block = runtime_block(res)
    assert block["padding_tokens"] == 58 and block["tokens_computed"] == 102
    assert block["padding_frac"] == pytest.approx(58 / 160)
    assert block["compile_stalls"] == 0  # every bucket was precompiled
    assert res.timeseries["padding_tokens"].sum() == 58


def _two_requests(tmp_path, xla: dict):
    trace = write_trace(tmp_path / "t.csv", [(0.0, 100, 2), (120.0, 100, 2)])
    data = scenario_dict(hardware="tpu-v6e", engine={**TPU["engine"], "xla": xla})
    data["workload"] = {"lengths": {"kind": "trace", "path": str(trace)}}
    del data["num_requests"]
    return simulate_dict(data)


def test_compile_on_miss_stalls_the_first_request_only(tmp_path):
    warm = _two_requests(tmp_path, {"backbone_compile_s": 30.0})
    cold = _two_requests(tmp_path, {"backbone_compile_s": 30.0, "precompile": False})
    base_ttft = warm.table["ttft_s"].iloc[0]
    # First request: the 128-token backbone (30 s) + its select (0.1 s) + request-bucket functions (6 x 0.1 s).
    assert cold.table["ttft_s"].iloc[0] == pytest.approx(base_ttft + 30.0 + 0.1 + 0.6)
    # Its decode step then needs the 16-token backbone and select: another 30.1 s before the 2nd token.
    assert cold.table["e2e_s"].iloc[0] - cold.table["ttft_s"].iloc[0] == pytest.approx(
        warm.table["e2e_s"].iloc[0] - warm.table["ttft_s"].iloc[0] + 30.1
    )
    # The second request finds both shapes compiled.
    assert cold.table["ttft_s"].iloc[1] == pytest.approx(warm.table["ttft_s"].iloc[1])
    from sim.document import runtime_block

    assert runtime_block(cold)["compile_stalls"] == 2
    assert runtime_block(cold)["compile_stall_s"] == pytest.approx(60.8)
    # From a warm persistent cache the stall shrinks by the published cached/cold ratio.
    cached = _two_requests(
        tmp_path, {"backbone_compile_s": 30.0, "precompile": False, "compile_cache": "warm"}
    )
    assert runtime_block(cached)["compile_stall_s"] == pytest.approx(60.8 * 0.398)


def test_partial_precompile_misses_only_the_uncovered_bucket(tmp_path):
    res = _two_requests(tmp_path, {"backbone_compile_s": 30.0, "precompile_token_buckets": [16]})
    from sim.document import runtime_block

    block = runtime_block(res)
    assert block["compile_stalls"] == 1  # the 128-token prefill shape; decode (16) was precompiled
    assert block["compile_stall_s"] == pytest.approx(30.0 + 0.1)


def test_xla_startup_sums_its_precompile():
    resolved, base, settings, _ = runtime_for(
        **TPU, startup={"container_start_s": 10, "provision_s": 5, "storage_bandwidth_gbs": 4.0}
    )
    b = settings.compile_times.backbone_s
    cold = startup_breakdown(resolved.startup, settings, "cold")
    # 6 token buckets x 1 attention bucket backbones; 6 selects + 6 request-bucket functions, 0.1 s each.
    assert cold.components["xla_precompile"] == pytest.approx(6 * b + 12 * 0.1)
    assert cold.total_s == pytest.approx(5 + 10 + resolved.model.weight_bytes / 4e9 + 6 * b + 1.2)
    warm = startup_breakdown(resolved.startup, settings, "warm")
    assert warm.components["xla_precompile"] == pytest.approx(0.398 * (6 * b + 1.2))
    two = resolve(
        load_scenario_dict(
            scenario_dict(
                hardware="tpu-v6e", profile="none", engine={**TPU["engine"], "xla": {"precompile_workers": 2}}
            )
        )
    ).runtime
    assert startup_breakdown(resolved.startup, two, "cold").components["xla_precompile"] == pytest.approx(
        (6 * b + 1.2) / 2
    )


def test_derived_backbone_compile_reproduces_the_published_warmup():
    # Llama-3.1-8B, budget 1024, 128 seqs: the whole precompile is the published 2 minutes.
    resolved, base, settings, _ = runtime_for(
        hardware="tpu-v6e",
        profile="none",
        engine={"max_model_len": 2048, "max_num_batched_tokens": 1024, "max_num_seqs": 128},
    )
    assert startup_breakdown(resolved.startup, settings, "cold").components[
        "xla_precompile"
    ] == pytest.approx(120.0)


def test_cuda_startup_sums_its_parts():
    resolved, base, settings, _ = runtime_for(startup={"container_start_s": 10, "storage_bandwidth_gbs": 4.0})
    cold = startup_breakdown(resolved.startup, settings, "cold")
    assert cold.components["cuda_graph_capture"] == pytest.approx(51 * 0.149)
    # A new GPU machine: the catalog's estimated 180 s acquisition, labelled as an estimate.
    assert cold.components["provision"] == 180.0 and cold.provenance["provision"].startswith("estimated")
    assert cold.total_s == pytest.approx(
        180 + 10 + resolved.model.weight_bytes / 4e9 + 4.2 + 19.4 + 51 * 0.149
    )
    assert startup_breakdown(resolved.startup, settings, "warm").components["torch_compile"] == pytest.approx(
        4.19
    )
    eager = runtime_for(engine={"max_model_len": 8192, "cuda": {"enforce_eager": True}})
    assert list(startup_breakdown(eager[0].startup, eager[2], "cold").components)[-1] == "engine_init"


def test_runtime_must_match_the_hardware():
    from sim.errors import InputError

    with pytest.raises(InputError) as err:
        runtime_for(engine={"runtime": "xla", "max_model_len": 8192})
    assert err.value.field == "engine.runtime"


def _p99_tpot(hardware: str, tp: int, sigma: float | None = None) -> float:
    data = scenario_dict(
        model="llama-3.1-70b",
        hardware=hardware,
        fleet={"tensor_parallel_size": tp, "collective_jitter_sigma": sigma},
        workload={"lengths": {"kind": "sharegpt_like"}, "arrivals": {"rate": 4}},
        num_requests=400,
    )
    return simulate_dict(data).summary["tpot_ms_p99"]


def test_a_straggler_tail_grows_with_the_ranks_over_pcie_but_not_over_nvlink():
    # What-if straggler sigmas, 0.5 per rank over PCIe and 0.05 over NVLink (no defaults: nothing measured or
    # published gives one). Going
    # from TP4 to TP8 halves each chip's work, but over PCIe the all-reduces (2 per layer, message = step
    # tokens x hidden) are a large share of the step and wait for the slowest of more ranks.
    pcie = _p99_tpot("rtx-pro-6000", 4, 0.5), _p99_tpot("rtx-pro-6000", 8, 0.5)
    nvlink = _p99_tpot("h100", 4, 0.05), _p99_tpot("h100", 8, 0.05)  # a dedicated link: little spread
    assert pcie[1] > 1.1 * pcie[0]
    assert nvlink[1] < 1.05 * nvlink[0]


def test_no_straggler_tail_without_a_measured_or_given_spread():
    base = scenario_dict(model="llama-3.1-70b", hardware="rtx-pro-6000", fleet={"tensor_parallel_size": 4})
    r = resolve(load_scenario_dict({**base, "profile": "none"}))
    assert r.link is not None and r.link.jitter_sigma == 0.0 and not r.link.measured
    assert "no published or measured spread" in r.provenance["link.collective_jitter_sigma"]
    # the shipped kernel-table profile prices the all-reduce from NVIDIA's measured NCCL table (PCIe, 4
    # GPUs: vLLM's custom all-reduce is off), which holds medians only: still no straggler tail
    r = resolve(load_scenario_dict(base))
    assert r.link is not None and r.link.jitter_sigma == 0.0 and r.link.measured
    assert "nccl all-reduce of 4 chips" in r.provenance["link.allreduce"]
    assert "medians only" in r.provenance["link.collective_jitter_sigma"]


def test_interconnect_choice_and_validation():
    from sim.errors import InputError

    r = resolve(
        load_scenario_dict(
            scenario_dict(
                model="llama-3.1-70b",
                hardware="h100",
                fleet={"tensor_parallel_size": 4, "interconnect": "pcie_gen5"},
            )
        )
    )
    assert "pcie_gen5" in r.provenance["link.tp_link"]
    with pytest.raises(InputError) as err:
        resolve(
            load_scenario_dict(
                scenario_dict(
                    model="llama-3.1-70b",
                    hardware="h100",
                    fleet={"tensor_parallel_size": 4, "interconnect": "nvlink9"},
                )
            )
        )
    assert err.value.field == "fleet.interconnect"


def test_moe_decode_reads_fewer_bytes_than_a_dense_model_of_its_total_size():
    resolved, base, _, _ = runtime_for(model="qwen3-30b-a3b", engine={"max_model_len": 8192})
    one = base.weight_bytes(1)
    many = base.weight_bytes(100_000)
    assert one < 0.2 * resolved.model.weight_bytes  # 8 of 128 experts per layer plus attention
    assert many == pytest.approx(resolved.model.weight_bytes, rel=0.02)  # every expert touched


def test_precompile_uses_the_measured_aot_compile_times():
    # The shipped v6e profile holds real XLA:TPU compile times per bucket; precompile is their sum.
    from pathlib import Path

    from sim.loader import load_scenario
    from sim.profile import load_profile

    path = Path(__file__).parent.parent / "scenarios" / "tpu_v6e_compile_wall.yaml"
    resolved = resolve(load_scenario(path, ["engine.xla.precompile=true"]))
    settings = resolved.runtime
    measured = {s.token_bucket: s.cold_s for s in load_profile(resolved.scenario.profile).compile.samples}
    keys = sorted(measured)

    def cold(t: int) -> float:  # a bucket the profile could not compile is interpolated over log2(bucket)
        return float(np.interp(np.log2(t), np.log2(keys), [measured[k] for k in keys]))

    expected = sum(cold(t) for t in settings.token_buckets) + 0.1 * (
        sum(1 for t in settings.token_buckets for r in settings.request_buckets if r <= t)
        + 6 * len(settings.request_buckets)
    )
    assert startup_breakdown(resolved.startup, settings, "cold").components[
        "xla_precompile"
    ] == pytest.approx(expected)
    assert "aot-compiled by calibrate" in settings.provenance["xla_compile_times"]
    # Between measured buckets the compile time is interpolated over log2(bucket).
    times = settings.compile_times
    assert min(measured[64], measured[128]) <= times.backbone(90, "cold") <= max(measured[64], measured[128])
