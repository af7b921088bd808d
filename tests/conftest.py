"""Shared fixtures. `live_server` starts one real vLLM CPU server per test session (see live_server.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    from tests.live_server import vllm_cpu_server

    with vllm_cpu_server(tmp_path_factory.mktemp("live")) as (base, model):
        yield base, model
