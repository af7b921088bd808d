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
import re
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

    async def send(
        self, prompt_ids: list[int], max_tokens: int, *, ignore_eos: bool = True, require_content: bool = True
    ) -> RequestRecord:
        """require_content: the harness's rule, a stream without text fails. Off (calibration probes), a stream
        whose tokens carried no text (a special token vLLM strips) still counts: its tokens come from the
        usage record, its first token from the first chunk with a choice, or the end of the stream."""
        url, body = self._payload(prompt_ids, max_tokens, ignore_eos)
        record = RequestRecord(success=False, prompt_len=len(prompt_ids), requested_output_len=max_tokens)
        start = time.perf_counter()
        record.start_wall = start
        stamps: list[float] = []
        chunks: list[float] = []  # every chunk with a choice, text or not
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
                        chunks.append(time.perf_counter())
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
        if not stamps and (require_content or not (usage_tokens or chunks)):
            record.error = "no content received"
            return record
        if not stamps:
            stamps = chunks[:1] or [end]
        record.success = True
        record.ttft = stamps[0] - start
        record.e2e_latency = end - start
        record.itl = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        record.generated_tokens = usage_tokens or len(stamps)
        record.tpot = (record.e2e_latency - record.ttft) / max(1, record.generated_tokens - 1)
        return record

    async def prefix_cache_counters(self) -> tuple[float, float] | None:
        """The server's prefix-cache (hits, queries) counters in tokens, or None (no /metrics, or not vLLM)."""
        try:
            async with asyncio.timeout(min(self.timeout_s, 10.0)):
                async with self._session.get(f"{self.endpoint}/metrics", headers=self.headers) as resp:
                    if resp.status != 200:
                        return None
                    return parse_prefix_cache(await resp.text())
        except Exception:  # metrics are optional: a server without them is measured all the same
            return None

    async def model_id(self) -> str:
        """The served model's id from /v1/models, within the client's timeout; an answer that is not an
        OpenAI model list (HTML, not JSON, no models) is a clear error, not a traceback."""
        url = f"{self.endpoint}/v1/models"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session.get(url, headers=self.headers) as resp:
                    if resp.status != 200:
                        raise InputError(f"{url} answered HTTP {resp.status}", "--endpoint")
                    text = await resp.text()
        except TimeoutError:
            raise InputError(f"{url} did not answer within {self.timeout_s:g} s", "--endpoint") from None
        try:
            data = json.loads(text)
            models = data["data"]
            return str(models[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(
                f"{url} did not answer with an OpenAI model list: {text[:80]!r}", "--endpoint"
            ) from None


_COUNTER_LINE = re.compile(r"^(vllm:prefix_cache_(?:hits|queries))(?:_total)?(?:\{[^}]*\})?\s+([0-9.eE+\-]+)")


def parse_prefix_cache(text: str) -> tuple[float, float] | None:
    """(hits, queries) in prompt tokens from a vLLM /metrics page (summed over engines); None without them."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _COUNTER_LINE.match(line)
        if match:
            found[match.group(1)] = found.get(match.group(1), 0.0) + float(match.group(2))
    if "vllm:prefix_cache_queries" not in found:
        return None
    return found.get("vllm:prefix_cache_hits", 0.0), found["vllm:prefix_cache_queries"]


def prompt_tokens(n: int, vocab_size: int, key: int = 0, seed: int = 0) -> list[int]:
    """n token ids that avoid the 4 special ids, drawn at random for (seed, key): requests with different
    keys, or runs with different seeds, share no prompt prefix (a server's prefix cache never hits them),
    and the same (seed, key) gives the same prompt again."""
    import numpy as np

    rng = np.random.default_rng((seed, key))
    return rng.integers(4, vocab_size, n).tolist()
