"""Transformer architecture numbers and what follows from them: parameter counts, KV bytes, FLOPs.

The step-cost models never look at weights, only at these shapes, so a model is described by its public
config numbers (catalog/models.yaml) or inline in a scenario.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelArchitecture(BaseModel):
    """A decoder-only transformer with GQA attention and a gated (SwiGLU) MLP, dense or mixture-of-experts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", description="Label used in reports.")
    source: str = Field("inline", description="Where the numbers come from (config.json URL or 'inline').")
    num_layers: int = Field(..., ge=1)
    hidden_size: int = Field(..., ge=1)
    num_attention_heads: int = Field(..., ge=1)
    num_kv_heads: int = Field(..., ge=1)
    head_dim: int = Field(..., ge=1)
    intermediate_size: int = Field(..., ge=1, description="MLP width; for MoE the width of one expert.")
    vocab_size: int = Field(..., ge=1)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = Field(131072, ge=1)
    num_experts: int = Field(0, ge=0, description="0 for a dense model.")
    num_experts_per_token: int = Field(0, ge=0, description="top-k routing for MoE models.")
    dtype_bytes: int = Field(2, ge=1, le=4, description="Bytes per element of the model's dtype (bf16 = 2).")
    weight_dtype_bytes: float | None = Field(
        None,
        ge=0.5,
        le=4,
        description="Bytes per weight when quantized (fp8 = 1, nvfp4 = 0.5); default dtype_bytes.",
    )
    kv_dtype_bytes: int | None = Field(
        None, ge=1, le=4, description="Bytes per KV-cache element (fp8 KV = 1); default dtype_bytes."
    )

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelArchitecture:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads}) for grouped-query attention"
            )
        if self.num_experts and not 1 <= self.num_experts_per_token <= self.num_experts:
            raise ValueError(
                f"num_experts_per_token ({self.num_experts_per_token}) must be within 1..num_experts "
                f"({self.num_experts})"
            )
        if not self.num_experts and self.num_experts_per_token:
            raise ValueError("num_experts_per_token is set but num_experts is 0 (dense model)")
        return self

    # ---- parameter counts -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def attention_params_per_layer(self) -> int:
        q = self.num_attention_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        # q, k, v projections plus the output projection
        return self.hidden_size * (q + 2 * kv) + q * self.hidden_size

    @property
    def expert_params(self) -> int:
        """One gated MLP: gate, up and down projections."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def mlp_params_per_layer(self) -> int:
        if self.is_moe:
            router = self.hidden_size * self.num_experts
            return self.num_experts * self.expert_params + router
        return self.expert_params

    @property
    def active_mlp_params_per_layer(self) -> int:
        """MLP parameters one token multiplies through (top-k experts for MoE)."""
        if self.is_moe:
            return self.num_experts_per_token * self.expert_params + self.hidden_size * self.num_experts
        return self.expert_params

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        norms = self.num_layers * 2 * self.hidden_size + self.hidden_size
        head = 0 if self.tie_word_embeddings else self.lm_head_params
        return (
            self.num_layers * (self.attention_params_per_layer + self.mlp_params_per_layer)
            + self.embedding_params
            + head
            + norms
        )

    @property
    def bytes_per_weight(self) -> float:
        return self.weight_dtype_bytes or self.dtype_bytes

    @property
    def bytes_per_kv_element(self) -> int:
        return self.kv_dtype_bytes or self.dtype_bytes

    @property
    def weight_bytes(self) -> int:
        """All weights at the serving precision (fp8: 1 byte each, nvfp4: half a byte; embeddings and norms
        alike -- a small underestimate, since vLLM keeps those in bf16)."""
        return int(self.total_params * self.bytes_per_weight)

    # ---- KV cache -----------------------------------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> int:
        """2 (K and V) x layers x kv_heads x head_dim x bytes: 128 KiB/token for Llama-3.1-8B in bf16."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.bytes_per_kv_element

    def kv_bytes_per_token_per_chip(self, tp: int) -> int:
        """KV heads are split across TP ranks; with more ranks than KV heads each rank keeps one replica."""
        heads_per_chip = max(1, -(-self.num_kv_heads // tp))
        return 2 * self.num_layers * heads_per_chip * self.head_dim * self.bytes_per_kv_element

    # ---- activations --------------------------------------------------------------------------------
    @property
    def activation_bytes_per_token_per_layer(self) -> int:
        """Bytes each token's activations move through one layer's matmuls (inputs read, outputs written).

        qkv: read hidden, write q+2kv; o: read q, write hidden; gate/up: read hidden, write 2 x inter;
        down: read inter, write hidden. For MoE, inter is the top-k experts' width.
        """
        q = self.num_attention_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        inter = self.intermediate_size * (self.num_experts_per_token if self.is_moe else 1)
        elements = (
            self.hidden_size
            + (q + 2 * kv)
            + q
            + self.hidden_size
            + self.hidden_size
            + 3 * inter
            + self.hidden_size
        )
        return elements * self.dtype_bytes
