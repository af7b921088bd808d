"""One vLLM replica: its pure V1 scheduler, KV block pool, memory plan and the SimPy process that steps it."""
