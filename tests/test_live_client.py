"""The live-server client against a misbehaving OpenAI-compatible server in this process (aiohttp): a stream
whose token carries no text, /v1/models answering HTML, an empty list or nothing, and vLLM's prefix-cache
counters. The real vLLM server is tests/test_live.py's."""

from __future__ import annotations

import asyncio
import json

import pytest

from sim.errors import InputError
from sim.live.client import CompletionsClient, parse_prefix_cache, prompt_tokens

web = pytest.importorskip("aiohttp.web", reason="the live client needs aiohttp (servesim[live])")


def _stream(*chunks: dict) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


async def _serve(routes, coroutine):
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port the OS chose
    try:
        return await coroutine(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _run(routes, coroutine):
    return asyncio.run(_serve(routes, coroutine))


async def _special_token(request):
    # vLLM strips a special token from the text: the stream has a choice with empty text, then the usage
    body = _stream(
        {"choices": [{"text": "", "index": 0}]}, {"choices": [], "usage": {"completion_tokens": 1}}
    )
    return web.Response(body=body, content_type="text/event-stream")


def test_a_token_without_text_fails_the_harness_rule_but_counts_for_a_probe():
    async def go(url):
        async with CompletionsClient(url, "m", timeout_s=5) as client:
            strict = await client.send([5, 6, 7], 1)
            probe = await client.send([5, 6, 7], 1, require_content=False)
        return strict, probe

    strict, probe = _run({"/v1/completions": _special_token}, go)
    assert not strict.success and strict.error == "no content received"
    assert probe.success and probe.generated_tokens == 1 and 0 < probe.ttft <= probe.e2e_latency


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        ("<html>login</html>", "text/html", "did not answer with an OpenAI model list"),
        ('{"data": []}', "application/json", "did not answer with an OpenAI model list"),
        ("not json", "text/plain", "did not answer with an OpenAI model list"),
    ],
)
def test_a_models_list_that_is_not_one_is_a_clear_error(body, content_type, message):
    async def models(request):
        return web.Response(text=body, content_type=content_type)

    async def go(url):
        async with CompletionsClient(url, "", timeout_s=5) as client:
            return await client.model_id()

    with pytest.raises(InputError, match=message):
        _run({"/v1/models": models}, go)


def test_a_stalled_models_list_is_cut_at_the_timeout():
    async def stalled(request):
        await asyncio.sleep(2)
        return web.Response(text="{}")

    async def go(url):
        async with CompletionsClient(url, "", timeout_s=0.3) as client:
            return await client.model_id()

    with pytest.raises(InputError, match="did not answer within 0.3 s"):
        _run({"/v1/models": stalled}, go)


def test_prefix_cache_counters_are_read_from_vllm_metrics():
    page = (
        "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
        'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1200.0\n'
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 192.0\n'
        'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 8.0\n'
    )
    assert parse_prefix_cache(page) == (200.0, 1200.0)
    assert parse_prefix_cache("vllm:num_requests_running 3\n") is None


def test_prompts_are_fresh_per_seed_and_reproducible():
    a, b = prompt_tokens(64, 512, 7, seed=1), prompt_tokens(64, 512, 7, seed=2)
    assert a == prompt_tokens(64, 512, 7, seed=1) and a[:16] != b[:16]
    assert min(a) >= 4 and max(a) < 512  # the 4 special ids are never drawn
    firsts = {tuple(prompt_tokens(16, 512, key, seed=3)) for key in range(300)}
    assert len(firsts) == 300  # no two requests of a run share their first block


def test_a_calibration_with_a_poor_held_out_fit_is_refused_unless_accepted():
    from types import SimpleNamespace

    from calibrate.cli import check_fit

    def profile(r2, p95):
        quality = SimpleNamespace(r2=r2, p95_rel_residual=p95)
        return SimpleNamespace(steps=SimpleNamespace(fit=SimpleNamespace(quality=quality)))

    check_fit(profile(0.91, 0.14), accept_poor_fit=False)
    with pytest.raises(InputError, match=r"R\^2 -1.24.*not written"):
        check_fit(profile(-1.24, 0.98), accept_poor_fit=False)
    check_fit(profile(-1.24, 0.98), accept_poor_fit=True)  # written, with a warning


def test_a_local_model_directory_is_read_from_its_config(tmp_path):
    from sim.resolve import lookup_model

    model = tmp_path / "my-model"
    model.mkdir()
    config = {
        "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
        "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 2048, "torch_dtype": "float32",
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    arch = lookup_model(str(model))
    assert (arch.name, arch.num_layers, arch.head_dim, arch.num_kv_heads, arch.dtype_bytes) == (
        "my-model",
        4,
        32,
        4,
        4,
    )
    (model / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(InputError, match="not a transformer config"):
        lookup_model(str(model))
