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


def write_tokenizer(vocab_size: int, directory: str) -> None:
    """A word-level tokenizer with `vocab_size` entries ("<s>", "</s>", "<pad>", "<unk>", then "w4" ...),
    written locally. Word-level tokenizers stream exactly one text chunk per token, so a live server's chunks
    are its tokens (a byte-level BPE over random weights can merge or drop chunks)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.Metaspace(replacement=" ", prepend_scheme="never")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    fast.save_pretrained(directory)


def write_model_dir(arch: ModelArchitecture, directory: str) -> str:
    """config.json and a tokenizer for `arch`: what `vllm serve --load-format dummy` needs, no download."""
    llama_config(arch, arch.num_layers, "live-server").save_pretrained(directory)
    write_tokenizer(arch.vocab_size, directory)
    return directory
