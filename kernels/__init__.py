"""servesim's own kernels, each beside its pure-jnp reference, so `calibrate kernels` can time them on a TPU
and the simulator can price "what does a better attention kernel buy in goodput?".

  ragged_paged_attention/   mixed prefill + decode attention over a paged KV cache (kernel.py, reference.py)
  kv_cache_update/          scatter of new K/V tokens into their pages (kernel.py, reference.py)
  block_sizes.py            tiling knobs, their per-TPU-generation defaults and the rules they must follow
  dispatch.py               SERVESIM_KERNELS=pallas|reference, with a logged fallback to the reference

Needs the jax extra (pip install "servesim[jax]").
"""
