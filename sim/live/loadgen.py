"""The load generator: replay a workload (arrival times + lengths, drawn by sim/traffic -- the same code the
simulator uses) against a live OpenAI-compatible server, with the seed harness's client semantics.

- Open loop: request i is sent at t0 + arrival_s[i], whatever the earlier ones are doing; with
  max_concurrency a semaphore caps requests in flight (arrivals still paced), as the harness does.
- Warm-up: `warmup` serial requests with the first prompt before t0, their TTFTs kept as metadata
  (cold_start_ttft_s = the first, warm_ttft_s = the last), not in the results.
- Every finished request is appended to `records_path` (JSONL, flushed) at once, so a run killed half-way
  keeps every finished request.
- Bounded: at most the workload's requests, and no new request after max_duration_s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.live.client import CompletionsClient, RequestRecord, prompt_tokens
from sim.traffic.workload import Workload


@dataclass
class LoadResult:
    records: list[RequestRecord]  # in workload order; None-free (unsent requests are left out)
    sent_arrival_s: np.ndarray  # scheduled send time of each sent request, seconds from t0
    duration_s: float  # t0 until the last request ended (the harness's duration)
    warmup_ttft_s: list[float]
    prompt_seed: int = 0  # the prompts' seed (fresh per run unless given: see prompt_tokens)
    # (prompt tokens found in the server's prefix cache, prompt tokens looked up) during the run, from its
    # /metrics counters; None when the server does not export them
    prefix_cache: tuple[float, float] | None = None


async def _replay(
    endpoint: str,
    model: str | None,
    workload: Workload,
    *,
    vocab_size: int,
    max_concurrency: int | None,
    warmup: int,
    timeout_s: float,
    max_duration_s: float | None,
    records_path: Path | None,
    use_chat: bool,
    prompt_seed: int,
) -> LoadResult:
    async with CompletionsClient(endpoint, model or "", use_chat=use_chat, timeout_s=timeout_s) as client:
        if not model:
            client.model = await client.model_id()
        n = workload.num_requests
        prompts = [
            prompt_tokens(int(workload.prompt_tokens[i]), vocab_size, i, prompt_seed) for i in range(n)
        ]
        cache_before = await client.prefix_cache_counters()
        warm = []
        for _ in range(warmup):
            rec = await client.send(prompts[0], int(workload.output_tokens[0]))
            warm.append(rec.ttft if rec.success else float("nan"))
        semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        sink = open(records_path, "a", encoding="utf-8") if records_path else None  # noqa: SIM115

        async def one(i: int) -> RequestRecord:
            async def send():
                return await client.send(prompts[i], int(workload.output_tokens[i]))

            if semaphore:
                async with semaphore:
                    rec = await send()
            else:
                rec = await send()
            if sink:
                sink.write(rec.to_json() + "\n")
                sink.flush()
            return rec

        t0 = time.perf_counter()
        tasks, sent = [], []
        try:
            for i in range(n):
                target = float(workload.arrival_s[i])
                if max_duration_s is not None and target > max_duration_s:
                    break
                delay = t0 + target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
                sent.append(target)
            records = list(await asyncio.gather(*tasks))
        finally:
            if sink:
                sink.close()
        duration = time.perf_counter() - t0
        for rec in records:  # times relative to t0
            rec.start_wall -= t0
            rec.end_wall -= t0 if rec.end_wall else 0.0
        cache_after = await client.prefix_cache_counters()
        hits = None
        if cache_before is not None and cache_after is not None:
            hits = (cache_after[0] - cache_before[0], cache_after[1] - cache_before[1])
        return LoadResult(records, np.asarray(sent), duration, warm, prompt_seed, hits)


def replay(
    endpoint: str,
    workload: Workload,
    *,
    vocab_size: int,
    model: str | None = None,
    max_concurrency: int | None = None,
    warmup: int = 3,
    timeout_s: float = 600.0,
    max_duration_s: float | None = None,
    records_path: Path | None = None,
    use_chat: bool = False,
    prompt_seed: int = 0,
) -> LoadResult:
    return asyncio.run(
        _replay(
            endpoint,
            model,
            workload,
            vocab_size=vocab_size,
            max_concurrency=max_concurrency,
            warmup=warmup,
            timeout_s=timeout_s,
            max_duration_s=max_duration_s,
            records_path=records_path,
            use_chat=use_chat,
            prompt_seed=prompt_seed,
        )
    )
