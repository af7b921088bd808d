"""Architecture arithmetic, vLLM defaults, memory plan and the roofline, against published numbers."""

from __future__ import annotations

import pytest

from sim.cost.collectives import ring_allreduce_s
from sim.cost.roofline import expected_distinct_experts
from sim.errors import InputError
from sim.hardware_kinds import tpu_page_size
from sim.loader import load_scenario_dict
from sim.replica.memory import GIB, estimate_activation_bytes
from sim.resolve import lookup_model, resolve
from tests.helpers import scenario_dict


def test_llama_parameter_counts_and_kv_bytes():
    m8 = lookup_model("llama-3.1-8b")
    assert m8.total_params == pytest.approx(8.03e9, rel=0.005)
    assert m8.weight_bytes == pytest.approx(
        16.06e9, rel=0.005
    )  # docs/references.md, hardware datasheets: 16.06 GB in bf16
    assert m8.kv_bytes_per_token == 128 * 1024  # docs/references.md#kv-cache-memory
    assert lookup_model("llama-3.1-70b").kv_bytes_per_token == 320 * 1024
    assert lookup_model("llama-3.1-70b").total_params == pytest.approx(70.6e9, rel=0.01)


def test_moe_active_and_total_params():
    q = lookup_model("qwen3-30b-a3b")
    assert q.total_params == pytest.approx(30.5e9, rel=0.02)  # "30B total"
    active = q.num_layers * (q.attention_params_per_layer + q.active_mlp_params_per_layer)
    assert active == pytest.approx(3.0e9, rel=0.15)  # "3B active" (embeddings excluded)
    mix = lookup_model("mixtral-8x7b")
    assert mix.total_params == pytest.approx(46.7e9, rel=0.01)


def test_expected_distinct_experts_limits():
    assert expected_distinct_experts(128, 8, 0) == 0
    assert expected_distinct_experts(128, 8, 1) == pytest.approx(8)  # one token: exactly its top-k
    assert expected_distinct_experts(128, 8, 10_000) == pytest.approx(128)  # many tokens: all experts
    assert expected_distinct_experts(8, 2, 2) == pytest.approx(8 * (1 - (6 / 8) ** 2))


def test_activation_estimate_near_the_published_vllm_log():
    # vLLM log, Llama-3-8B on H100: activations 2.38 GiB (gateway-api-inference-extension PR #550).
    m8 = lookup_model("llama-3.1-8b")
    est = estimate_activation_bytes(m8, 8192, 1024, 1) / GIB
    assert est == pytest.approx(2.38, rel=0.25)


def test_vllm_defaults_by_hardware():
    h100 = resolve(load_scenario_dict(scenario_dict()))
    assert (h100.engine.max_num_batched_tokens, h100.engine.max_num_seqs) == (8192, 1024)
    assert h100.engine.block_size == 16 and h100.engine.gpu_memory_utilization == 0.92
    a100 = resolve(load_scenario_dict(scenario_dict(hardware="a100-80g")))
    assert (a100.engine.max_num_batched_tokens, a100.engine.max_num_seqs) == (2048, 256)
    v6e = resolve(load_scenario_dict(scenario_dict(hardware="tpu-v6e", engine={"max_model_len": 2048})))
    assert (v6e.engine.max_num_batched_tokens, v6e.engine.max_num_seqs) == (2048, 256)
    assert v6e.engine.block_size == 128  # next_pow2(2048) // 16
    assert v6e.memory.activation_bytes == 0
    assert "inferred" in v6e.provenance["engine.max_num_seqs"]


@pytest.mark.parametrize(
    ("max_len", "page"), [(1024, 64), (2048, 128), (4096, 256), (8192, 256), (8193, 16), (200, 16)]
)
def test_tpu_page_size_rule(max_len, page):
    assert tpu_page_size(max_len) == page


def test_kv_capacity_on_h100():
    r = resolve(load_scenario_dict(scenario_dict()))
    # 85.03e9 x 0.92 - 16.06e9 weights - activations, at 128 KiB per token.
    expected_tokens = (85.03e9 * 0.92 - r.model.weight_bytes - r.memory.activation_bytes) / (128 * 1024)
    assert r.memory.num_token_slots == pytest.approx(expected_tokens, abs=16)


def test_tensor_parallel_shards_weights_and_kv():
    r1 = resolve(
        load_scenario_dict(
            scenario_dict(model="llama-3.1-70b", hardware="h200", fleet={"tensor_parallel_size": 2})
        )
    )
    r2 = resolve(
        load_scenario_dict(
            scenario_dict(model="llama-3.1-70b", hardware="h200", fleet={"tensor_parallel_size": 4})
        )
    )
    assert r2.memory.weight_bytes == pytest.approx(r1.memory.weight_bytes / 2, rel=1e-6)
    assert r2.memory.kv_bytes_per_token == r1.memory.kv_bytes_per_token // 2
    assert r2.memory.num_blocks > 2 * r1.memory.num_blocks  # weights freed per chip go to KV


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "llama-3.1-70b", "hardware": "l4"}, "model"),
        ({"engine": {"max_model_len": 131072}, "hardware": "l4"}, "engine.max_model_len"),
        (
            {"engine": {"max_num_batched_tokens": 64, "max_num_seqs": 128, "max_model_len": 8192}},
            "engine.max_num_batched_tokens",
        ),
        ({"fleet": {"tensor_parallel_size": 16}}, "fleet.tensor_parallel_size"),
        ({"fleet": {"tensor_parallel_size": 3}}, "fleet.tensor_parallel_size"),
        ({"slo": {"class": "nope"}}, "slo.class"),
        ({"fleet": {"tensor_parallel_size": 4, "replicas_per_host": 3}}, "fleet.replicas_per_host"),
        ({"model": "gpt-9"}, "model"),
        ({"hardware": "cpu"}, "engine.kv_cache_space_gib"),
    ],
)
def test_combinations_that_cannot_run(overrides, field):
    with pytest.raises(InputError) as err:
        resolve(load_scenario_dict(scenario_dict(**overrides)))
    assert err.value.field == field


def test_roofline_decode_and_prefill_regimes():
    from sim.cost.base import StepBatch

    r = resolve(load_scenario_dict(scenario_dict(profile="none")))  # the datasheet roofline itself
    model = r.build_step_model()
    # Batch-1 decode at short context: memory bound, ~ weights / (3.35 TB/s x 0.88); 0.5 ms host overhead.
    one = model.parts(StepBatch(1, 128, (), (), 1), 0, 0)
    assert one.memory_s > one.compute_s
    assert one.device_s == pytest.approx(16.06e9 / (3.35e12 * 0.88), rel=0.02)
    assert model.overhead_s == 0.0005
    # A full 8192-token prefill chunk: compute bound, ~ 2 x 8e9 x 8192 / (989.4e12 x 0.73) plus attention.
    big = model.parts(StepBatch(0, 0, (8192,), (8192,), 1), 0, 0)
    assert big.compute_s > big.memory_s
    linear = 2 * 6.98e9 * 8192 / (989.4e12 * 0.73)
    assert linear < big.compute_s < linear * 1.25
    # More decode context means more KV bytes and a longer step.
    assert (
        model.parts(StepBatch(64, 64 * 4000, (), (), 64), 0, 0).device_s
        > model.parts(StepBatch(64, 64 * 100, (), (), 64), 0, 0).device_s
    )


def test_ring_allreduce_formula():
    # 2(t-1) hops of message/t bytes each, plus 2(t-1) hop latencies.
    assert ring_allreduce_s(8e6, 4, 1e9, 1e-5) == pytest.approx(6 * 1e-5 + 6 / 4 * 8e6 / 1e9)
    assert ring_allreduce_s(8e6, 1, 1e9, 1e-5) == 0.0


def test_host_packing():
    one_tp8 = resolve(
        load_scenario_dict(
            scenario_dict(
                model="llama-3.1-70b", hardware="h100", fleet={"tensor_parallel_size": 8, "replicas": 3}
            )
        )
    )
    assert (one_tp8.replicas_per_host, one_tp8.num_hosts) == (1, 3)
    small = resolve(load_scenario_dict(scenario_dict(fleet={"tensor_parallel_size": 2, "replicas": 6})))
    assert (small.replicas_per_host, small.num_hosts) == (4, 2)  # four TP2 replicas fill an 8-chip host
    sparse = resolve(load_scenario_dict(scenario_dict(fleet={"replicas": 6, "replicas_per_host": 2})))
    assert sparse.num_hosts == 3
