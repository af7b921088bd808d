"""Ragged paged attention: kernel.py (Pallas TPU) beside reference.py (pure jnp)."""
