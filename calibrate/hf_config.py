"""The architecture's public numbers as a Hugging Face Llama config (random or dummy weights, no download)."""

from __future__ import annotations

from sim.architecture import ModelArchitecture
from sim.errors import InputError


def llama_config(arch: ModelArchitecture, layers: int, method: str):
    """A transformers LlamaConfig for `arch` at `layers` depth. Dense models only: the methods that build
    real models (torch, vllm) do not lay out MoE experts yet."""
    from transformers import LlamaConfig

    if arch.is_moe:
        raise InputError(
            f"the {method} method times dense models only so far; use the tpu-aot or jax method for {arch.name}",
            "--model",
        )
    config = LlamaConfig(
        hidden_size=arch.hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_kv_heads,
        head_dim=arch.head_dim,
        intermediate_size=arch.intermediate_size,
        vocab_size=arch.vocab_size,
        max_position_embeddings=arch.max_position_embeddings,
        tie_word_embeddings=arch.tie_word_embeddings,
        torch_dtype="bfloat16" if arch.dtype_bytes == 2 else "float32",
    )
    config.architectures = ["LlamaForCausalLM"]
    return config
