"""Roofline step cost from datasheet peaks and the model's architecture.

Per step, per chip of the tensor-parallel group:
  FLOPs  = 2 x active matmul params x tokens + 2 x lm_head x sampled rows
           + 4 x q_heads x head_dim x layers x (query, key) pairs attended (causal)
  bytes  = weights (MoE: only the experts the step's tokens touch) + KV read + KV written + activations
  time   = max(FLOPs / (peak x flops_utilization), bytes / (bandwidth x memory_bandwidth_utilization))
           + ring all-reduce time (TP > 1) + a fixed per-step host overhead.
The utilisation factors default to published figures (catalog/efficiency.yaml says which are estimates).

Measured attention (`cost_model.attention: kernel`): the profile's per-layer kernel fit replaces the
attention FLOPs and the KV-read bytes; the kernel runs serially with the matmuls, so its time is added to both
sides of the max (max(c + k, m + k) = max(c, m) + k). Heads per chip scale the kernel time when the
scenario's TP differs from the one measured.

MoE weight traffic: with E experts, top-k routing and T tokens in the step, a layer touches on average
E x (1 - (1 - k/E)^T) distinct experts (each token picks k of E; uniform routing assumed), so a decode step
of an MoE reads far fewer bytes than its total size but more than its active size once T grows.
"""

from __future__ import annotations

import numpy as np

from sim.architecture import ModelArchitecture
from sim.cost.base import DeviceParts, DeviceRunParts, DeviceTimeModel, IntColumn, StepBatch
from sim.cost.collectives import TPLink
from sim.hardware import HardwareSpec
from sim.profile import KernelSection


def expected_distinct_experts(num_experts: int, top_k: int, num_tokens: int) -> float:
    """E x (1 - (1 - k/E)^T): expected experts hit by T tokens routing uniformly to k of E each."""
    if num_tokens <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** num_tokens)


class RooflineStepTime(DeviceTimeModel):
    name = "roofline"

    def __init__(
        self,
        arch: ModelArchitecture,
        hw: HardwareSpec,
        *,
        tp: int,
        link: TPLink | None,
        memory_bandwidth_utilization: float,
        flops_utilization: float,
        step_overhead_s: float,
        provenance: dict[str, str],
        attention_kernel: KernelSection | None = None,
    ):
        """attention_kernel: a profile's KernelSection, or None for the roofline's own attention term."""
        self.arch, self.hw, self.tp = arch, hw, tp
        self.provenance = provenance
        self.overhead_s = step_overhead_s
        b = arch.bytes_per_weight
        self._flops_per_s = hw.peak_flops * flops_utilization
        self._bytes_per_s = hw.memory_bandwidth_bytes_s * memory_bandwidth_utilization
        # Per chip: matmul work and weights are split evenly over the TP group.
        self._linear_flops_per_token = (
            2 * arch.num_layers * (arch.attention_params_per_layer + arch.active_mlp_params_per_layer) / tp
        )
        self._lm_head_flops_per_row = 2 * arch.lm_head_params / tp
        self._attn_flops_per_pair = 4 * arch.num_attention_heads * arch.head_dim * arch.num_layers / tp
        head = 0 if arch.tie_word_embeddings else arch.lm_head_params
        if arch.is_moe:
            router = arch.hidden_size * arch.num_experts
            self._fixed_weight_bytes = (
                (arch.num_layers * (arch.attention_params_per_layer + router) + head) * b / tp
            )
            self._expert_bytes = arch.num_layers * arch.expert_params * b / tp
        else:
            self._fixed_weight_bytes = arch.weight_bytes / tp
            self._expert_bytes = 0.0
        self._kv_bytes_per_token = arch.kv_bytes_per_token_per_chip(tp)
        self._act_bytes_per_token = arch.num_layers * arch.activation_bytes_per_token_per_layer / tp
        self._allreduce_bytes_per_token = arch.hidden_size * b  # one all-reduce message row
        self._allreduces_per_step = 2 * arch.num_layers
        self.link = link
        self._kernel = None
        self._run_constants: dict[tuple[int, int, int], tuple[float, float, float]] = {}
        if attention_kernel is not None:
            fit = attention_kernel.fit
            c = fit.coefficients
            heads = attention_kernel.tensor_parallel_size / tp  # per-chip heads relative to the measurement
            self._kernel = tuple(
                v * arch.num_layers * heads
                for v in (fit.intercept_s, c["kv_read_tokens"], c["attention_pairs"], c["num_seqs"])
            )

    def weight_bytes(self, num_tokens: int) -> float:
        if not self.arch.is_moe:
            return self._fixed_weight_bytes
        experts = expected_distinct_experts(
            self.arch.num_experts, self.arch.num_experts_per_token, num_tokens
        )
        return self._fixed_weight_bytes + experts * self._expert_bytes

    def parts(self, batch: StepBatch, padding_tokens: int, padding_seqs: int) -> DeviceParts:
        tokens, pairs, kv_read = batch.work()
        rows = tokens + padding_tokens
        compute_s, memory_s = self.time_from_features(
            rows,
            pairs,
            kv_read,
            batch.num_sampled_seqs + padding_seqs,
            real_tokens=tokens,
            num_seqs=batch.num_seqs,
        )
        return DeviceParts(compute_s, memory_s, self.communication_s(rows))

    def communication_s(self, rows: int) -> float:
        """The step's TP all-reduces (two per layer) for `rows` token rows; 0 without tensor parallelism."""
        if self.tp <= 1:
            return 0.0
        assert self.link is not None
        return self._allreduces_per_step * self.link.allreduce_s(rows * self._allreduce_bytes_per_token)

    def time_from_features(
        self,
        rows: float,
        pairs: float,
        kv_read: float,
        sampled: float,
        real_tokens: float | None = None,
        num_seqs: float | None = None,
    ) -> tuple[float, float]:
        """(compute_s, memory_s) for a step given its summary features (rows = tokens incl. padding)."""
        real = rows if real_tokens is None else real_tokens
        flops = self._linear_flops_per_token * rows + self._lm_head_flops_per_row * sampled
        bytes_moved = (
            self.weight_bytes(int(rows)) + self._kv_bytes_per_token * real + self._act_bytes_per_token * rows
        )
        if self._kernel is None:
            flops += self._attn_flops_per_pair * pairs
            bytes_moved += self._kv_bytes_per_token * kv_read
            return flops / self._flops_per_s, bytes_moved / self._bytes_per_s
        seqs = sampled if num_seqs is None else num_seqs
        k0, k_kv, k_pairs, k_seq = self._kernel
        attention_s = (k0 + k_kv * kv_read + k_pairs * pairs + k_seq * seqs) if pairs or kv_read else 0.0
        return flops / self._flops_per_s + attention_s, bytes_moved / self._bytes_per_s + attention_s

    def decode_run_parts(
        self, num_seqs: int, padding_tokens: int, padding_seqs: int, contexts: IntColumn
    ) -> DeviceRunParts:
        """parts() of a run of pure decode steps, vectorised with the scalar path's operations in the scalar
        path's order, so every element is bit-identical to parts() of that step."""
        n = num_seqs
        key = (n, padding_tokens, padding_seqs)
        per_batch = self._run_constants.get(key)
        if per_batch is None:  # a handful of batch shapes recur across thousands of runs
            rows = n + padding_tokens
            flops = self._linear_flops_per_token * rows + self._lm_head_flops_per_row * (n + padding_seqs)
            bytes_moved = (
                self.weight_bytes(int(rows)) + self._kv_bytes_per_token * n + self._act_bytes_per_token * rows
            )
            per_batch = self._run_constants[key] = (flops, bytes_moved, self.communication_s(rows))
        flops, bytes_moved, comm = per_batch
        fps, bps, per_pair, per_kv = (
            self._flops_per_s,
            self._bytes_per_s,
            self._attn_flops_per_pair,
            self._kv_bytes_per_token,
        )
        if isinstance(contexts, list):  # short runs: plain floats beat numpy's per-call overhead
            if self._kernel is None:
                compute = [(flops + per_pair * c) / fps for c in contexts]
                memory = [(bytes_moved + per_kv * c) / bps for c in contexts]
            else:
                k0, k_kv, k_pairs, k_seq = self._kernel
                attention = [k0 + k_kv * c + k_pairs * c + k_seq * n for c in contexts]
                compute = [flops / fps + a for a in attention]
                memory = [bytes_moved / bps + a for a in attention]
            return DeviceRunParts(compute, memory, comm, [False] * len(contexts))
        if self._kernel is None:
            compute_arr = (flops + per_pair * contexts) / fps
            memory_arr = (bytes_moved + per_kv * contexts) / bps
        else:
            k0, k_kv, k_pairs, k_seq = self._kernel
            attention_arr = k0 + k_kv * contexts + k_pairs * contexts + k_seq * n
            compute_arr = flops / fps + attention_arr
            memory_arr = bytes_moved / bps + attention_arr
        return DeviceRunParts(compute_arr, memory_arr, comm, np.zeros(len(contexts), dtype=bool))
