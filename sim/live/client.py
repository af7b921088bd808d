"""A streaming OpenAI-completions client with the seed harness's exact metric semantics
(docs/references.md#seed-harness), for measuring live servers.

- POST {endpoint}/v1/completions with {model, prompt, max_tokens, temperature 0, stream, stream_options:
  {include_usage}} (+ ignore_eos, a vLLM extension); /v1/chat/completions with `use_chat`.
- Prompts are token-id lists, so prompt lengths are exact without a tokenizer (the harness re-tokenizes text).
- Only chunks with non-empty content are timestamped. TTFT = first such chunk - start; ITL = gaps between
  them (per chunk); generated tokens = usage.completion_tokens if present and non-zero, else the chunk count;
  TPOT = (E2E - TTFT) / max(1, generated - 1).
- A request fails on HTTP status != 200, a timeout, any exception, or a stream without content; failures
  keep their error and are left out of latency statistics by the caller.
The client talks only to the endpoint it is given: nothing else is contacted.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from sim.errors import InputError


@dataclass
class RequestRecord:
    """One request as the harness records it (times in seconds; start/end are perf_counter values)."""

    success: bool
    prompt_len: int
    requested_output_len: int
    generated_tokens: int = 0
    ttft: float = 0.0
    e2e_latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    tpot: float = 0.0
    error: str | None = None
    start_wall: float = 0.0
    end_wall: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def check_endpoint(url: str) -> str:
    """An explicit http(s) base URL the user gave; anything else is refused."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"'{url}' is not an http(s) base URL such as http://127.0.0.1:8000", "--endpoint")
    return url.rstrip("/")


def _require_aiohttp():
    try:
        import aiohttp
    except ImportError:
        raise InputError(
            'measuring a live server needs aiohttp: pip install "servesim[live]"', "--endpoint"
        ) from None
    return aiohttp


class CompletionsClient:
    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        use_chat: bool = False,
        timeout_s: float = 600.0,
        api_key: str | None = None,
    ):
        self.endpoint = check_endpoint(endpoint)
        self.model, self.use_chat, self.timeout_s = model, use_chat, timeout_s
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._session: Any = None  # an aiohttp.ClientSession while open (aiohttp is an optional extra)

    async def __aenter__(self):
        aiohttp = _require_aiohttp()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *exc):
        await self._session.close()

    def _payload(self, prompt_ids: list[int], max_tokens: int, ignore_eos: bool) -> tuple[str, dict]:
        body = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if ignore_eos:
            body["ignore_eos"] = True
        if self.use_chat:
            body["messages"] = [{"role": "user", "content": " ".join(f"w{i}" for i in prompt_ids)}]
            return f"{self.endpoint}/v1/chat/completions", body
        body["prompt"] = prompt_ids
        return f"{self.endpoint}/v1/completions", body

    async def send(self, prompt_ids: list[int], max_tokens: int, *, ignore_eos: bool = True) -> RequestRecord:
        url, body = self._payload(prompt_ids, max_tokens, ignore_eos)
        record = RequestRecord(success=False, prompt_len=len(prompt_ids), requested_output_len=max_tokens)
        start = time.perf_counter()
        record.start_wall = start
        stamps: list[float] = []
        usage_tokens = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session.post(url, json=body, headers=self.headers) as resp:
                    if resp.status != 200:
                        text = await resp.text()
                        record.error = f"HTTP {resp.status}: {text[:300]}"
                        return record
                    async for raw in resp.content:
                        line = raw.decode("utf-8", "replace").strip()
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        chunk = json.loads(data)
                        if chunk.get("usage"):
                            usage_tokens = chunk["usage"].get("completion_tokens") or 0
                        choices = chunk.get("choices") or []
                        if not choices:
                            continue
                        choice = choices[0]
                        content = (
                            (choice.get("delta") or {}).get("content")
                            if self.use_chat
                            else choice.get("text")
                        )
                        if content:
                            stamps.append(time.perf_counter())
        except TimeoutError:
            record.error = "timeout"
            return record
        except Exception as exc:  # any failure of the request is recorded, never raised
            record.error = f"{type(exc).__name__}: {exc}"
            return record
        end = time.perf_counter()
        record.end_wall = end
        if not stamps:
            record.error = "no content received"
            return record
        record.success = True
        record.ttft = stamps[0] - start
        record.e2e_latency = end - start
        record.itl = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        record.generated_tokens = usage_tokens or len(stamps)
        record.tpot = (record.e2e_latency - record.ttft) / max(1, record.generated_tokens - 1)
        return record

    async def model_id(self) -> str:
        async with self._session.get(f"{self.endpoint}/v1/models", headers=self.headers) as resp:
            if resp.status != 200:
                raise InputError(f"{self.endpoint}/v1/models answered HTTP {resp.status}", "--endpoint")
            data = await resp.json()
        return data["data"][0]["id"]


def prompt_tokens(n: int, vocab_size: int, offset: int = 0) -> list[int]:
    """n token ids that avoid the 4 special ids and differ between requests (no prefix-cache hits)."""
    span = vocab_size - 4
    return [4 + (offset * 7919 + i) % span for i in range(n)]
