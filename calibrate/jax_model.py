"""The model's step as a JAX function, for compile-time and step-time measurement (methods `jax` and
`tpu-aot`).

One token bucket = one forward pass over that many tokens: embedding, per layer RMSNorm -> q/k/v
projections -> causal GQA attention -> output projection -> RMSNorm -> gated MLP, then the final norm and
the logits of the last token. Layers are unrolled Python loops, as a traced model graph is. This is a
dense prefill-shaped graph: it measures how long XLA takes to compile and run the model's matmuls and
attention at each bucket shape; it does not reproduce tpu-inference's paged-attention kernels.
"""

from __future__ import annotations

from sim.architecture import ModelArchitecture


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


def param_shapes(arch: ModelArchitecture, layers: int, dtype) -> dict:
    """Parameter shapes as a pytree of (shape, dtype) tuples."""
    h, q, kv, inter = (
        arch.hidden_size,
        arch.num_attention_heads * arch.head_dim,
        arch.num_kv_heads * arch.head_dim,
        arch.intermediate_size,
    )
    if arch.is_moe:
        inter = arch.intermediate_size * arch.num_experts_per_token  # the experts a token runs through
    layer = {
        "ln1": ((h,), dtype),
        "wq": ((h, q), dtype),
        "wk": ((h, kv), dtype),
        "wv": ((h, kv), dtype),
        "wo": ((q, h), dtype),
        "ln2": ((h,), dtype),
        "wg": ((h, inter), dtype),
        "wu": ((h, inter), dtype),
        "wd": ((inter, h), dtype),
    }
    return {
        "embed": ((arch.vocab_size, h), dtype),
        "layers": [dict(layer) for _ in range(layers)],
        "norm": ((h,), dtype),
        "lm_head": ((h, arch.vocab_size), dtype),
    }


def abstract_params(arch: ModelArchitecture, layers: int, dtype, sharding=None):
    jax, _ = _jax()
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s[0], s[1], sharding=sharding),
        param_shapes(arch, layers, dtype),
        is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple),
    )


def random_params(arch: ModelArchitecture, layers: int, dtype, seed: int = 0):
    jax, jnp = _jax()
    shapes = param_shapes(arch, layers, dtype)
    leaves, tree = jax.tree.flatten(
        shapes, is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple)
    )
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    arrays = [
        (jax.random.normal(k, shape, jnp.float32) * 0.02).astype(dt)
        for k, (shape, dt) in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(tree, arrays)


def make_forward(arch: ModelArchitecture):
    jax, jnp = _jax()
    heads, kv_heads, head_dim = arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
    group = heads // kv_heads

    def rmsnorm(x, w):
        x32 = x.astype(jnp.float32)
        return (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-6)).astype(x.dtype) * w

    def forward(params, tokens):  # tokens: i32[n]
        n = tokens.shape[0]
        x = params["embed"][tokens]  # [n, hidden]
        causal = jnp.tril(jnp.ones((n, n), dtype=bool))
        for layer in params["layers"]:
            h = rmsnorm(x, layer["ln1"])
            q = (h @ layer["wq"]).reshape(n, kv_heads, group, head_dim)  # [n, kv, group, d]
            k = (h @ layer["wk"]).reshape(n, kv_heads, head_dim)  # [n, kv, d]
            v = (h @ layer["wv"]).reshape(n, kv_heads, head_dim)
            scores = jnp.einsum("qkgd,skd->kgqs", q, k).astype(jnp.float32) / jnp.sqrt(head_dim)
            scores = jnp.where(causal[None, None], scores, -1e30)
            probs = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
            attn = jnp.einsum("kgqs,skd->qkgd", probs, v).reshape(n, heads * head_dim)
            x = x + attn @ layer["wo"]
            h = rmsnorm(x, layer["ln2"])
            x = x + (jax.nn.silu(h @ layer["wg"]) * (h @ layer["wu"])) @ layer["wd"]
        return rmsnorm(x[-1:], params["norm"]) @ params["lm_head"]  # [1, vocab]

    return forward
