"""A model architecture read from a local Hugging Face `config.json` (a model directory or the file), so a
user's own model can be calibrated and simulated without a catalog entry. Nothing is downloaded.

The fields are those of Llama-style configs (transformers' LlamaConfig, Qwen2/3, Mistral, Mixtral): layers,
hidden size, attention and KV heads, head_dim (default hidden / heads), intermediate size, vocabulary,
tied embeddings, positions, the dtype, and for MoE the expert count and experts per token.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from sim.architecture import ModelArchitecture
from sim.errors import InputError

DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def config_path(spec: str) -> Path | None:
    """The config.json a model spec names: a directory holding one, or a .json file; None for a catalog name."""
    path = Path(spec)
    if path.suffix == ".json" and path.is_file():
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path / "config.json"
    return None


def architecture_from_config(path: Path, field: str = "model") -> ModelArchitecture:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path} as a model config: {exc}", field) from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a model config (a JSON object)", field)

    def need(*keys: str):
        for key in keys:
            if key in config:
                return config[key]
        raise InputError(f"{path} has no {keys[0]}: not a transformer config servesim can read", field)

    hidden, heads = int(need("hidden_size")), int(need("num_attention_heads"))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    name = path.parent.name if path.name == "config.json" else path.stem
    try:
        return ModelArchitecture(
            name=name,
            source=f"{path} (local config.json)",
            num_layers=int(need("num_hidden_layers", "n_layer", "num_layers")),
            hidden_size=hidden,
            num_attention_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(need("moe_intermediate_size", "intermediate_size"))
            if config.get("num_experts") or config.get("num_local_experts")
            else int(need("intermediate_size")),
            vocab_size=int(need("vocab_size")),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings", 131072)),
            num_experts=int(config.get("num_local_experts") or config.get("num_experts") or 0),
            num_experts_per_token=int(config.get("num_experts_per_tok") or 0),
            dtype_bytes=DTYPE_BYTES.get(dtype.removeprefix("torch."), 2),
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}", field) from None
