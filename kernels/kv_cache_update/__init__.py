"""KV-cache update: kernel.py (Pallas TPU) beside reference.py (pure jnp)."""
