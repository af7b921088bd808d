"""A pure-Python model of vLLM V1's scheduler (vllm/v1/core/sched/scheduler.py, as documented in
docs/references.md#vllm-scheduler). No SimPy in here: ``schedule()`` plans one engine step and
``update_from_step()`` applies its result, so every rule is unit-testable on its own.

The rules, per step:
  1. Running requests first, in admission order: a decode computes 1 token; a request part-way through its
     prompt computes its next chunk, min(remaining, leftover token budget).
  2. Each needs ceil((computed + new) / block_size) KV blocks. If they do not fit, the most recently
     admitted running request is preempted by *recompute*: its blocks are freed, its computed tokens
     reset to 0, and it goes back to the *front* of the waiting queue. Repeat until the rest fit.
  3. Only if nothing was preempted: admit waiting requests (FCFS) while budget is left and fewer than
     max_num_seqs run; a prompt longer than the leftover budget is chunked; stop at the first request
     whose blocks do not fit (waiting requests never cause preemption).
  4. A request samples a token when its computed tokens reach its full length (end of prefill, or every
     decode step); it finishes when it has all its output tokens.

Prefix caching (engine.enable_prefix_caching, with requests that carry block hashes): at admission a
request takes the longest cached prefix of its full blocks -- at most (tokens - 1) // block_size of them,
so at least one token is computed -- and computes only the rest; cached tokens are not charged to the
step's token budget (vLLM counts num_tokens - num_computed_tokens). A block is offered to the cache when it
is full: prompt blocks at the end of the chunk that fills them, blocks filled while decoding when the
request leaves the decode set. See sim/replica/kv_cache.py for eviction.

Speed: decodes are not looped over. All decode requests advance in lock-step, one token per step, so they
are kept as running sums (count, total context) plus two O(1) indexes: how many cross a block boundary at
a given step (bucketed by computed-tokens phase modulo block_size) and who finishes at a given step.

NOTE: running order is always [decodes..., prefills...]: a prompt is chunked only when it exhausts the
budget, so nothing is admitted behind it until it finishes; preemption pops from the end. Hence decodes
never lose their token to a prefill, and max_num_batched_tokens >= max_num_seqs (checked at resolve time,
as vLLM checks it) means every decode always fits in the budget.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.cost.base import StepBatch
from sim.replica.kv_cache import KVBlockPool, blocks_for
from sim.replica.request import RequestState, Status

if TYPE_CHECKING:
    from sim.replica.acceptance import SpeculativeDecoding


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    num_blocks: int
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = False
    offload_blocks: int = 0  # KV blocks the host-memory tier holds (0: no KV offload)
    load_s_per_block: float = 0.0  # seconds to load one block back from the host tier
    speculative: SpeculativeDecoding | None = None  # speculative decoding (sim/replica/speculative.py)


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One scheduled engine step."""

    step_index: int  # the replica's step counter
    batch: StepBatch  # what the step computes, for the cost model
    prefill_reqs: tuple[RequestState, ...]  # requests computing a prompt chunk, in running order
    prefill_tokens: tuple[int, ...]  # tokens each of them computes this step
    preempted: tuple[RequestState, ...]  # requests preempted while planning this step
    loaded_blocks: int = 0  # blocks loaded back from the host tier for this step's admissions


class Scheduler:
    # Query tokens each decode sequence computes per step: 1 here; 1 + k with speculative decoding, whose
    # scheduler (sim/replica/speculative.py) overrides the decode-set hooks marked below.
    decode_query_tokens = 1

    def __init__(self, config: SchedulerConfig):
        if config.max_num_batched_tokens < config.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")
        self.config = config
        self.block_size = config.block_size
        self.kv = KVBlockPool(config.num_blocks, config.offload_blocks)
        self._loaded_blocks = 0  # blocks loaded from the host tier while planning the current step
        self.waiting: deque[RequestState] = deque()
        self.num_waiting = 0  # waiting requests that are not aborted (the deque drops aborted ones lazily)
        self.running: dict[int, RequestState] = {}  # req_id -> state, in admission order
        self.prefilling: list[RequestState] = []  # running requests still computing their prompt, in order
        self.step_index = 0  # index of the next step to plan
        # Decode set, as running sums:
        self.num_decode = 0
        self.decode_computed_sum = (
            0  # sum of computed tokens over decode requests, at the start of step_index
        )
        self._phase_counts = [
            0
        ] * config.block_size  # decode requests by (computed - start step) % block_size
        self._finishing: dict[int, list[RequestState]] = {}  # step -> decode requests finishing at it
        # Totals for accounting and tests:
        self.num_preemptions = 0
        self.num_computed_tokens_total = 0
        # Prompt tokens still to compute, waiting and prefilling requests together: what a request routed
        # here now queues behind (a router's predicted TTFT reads it).
        self.pending_prefill_tokens = 0

    # ---- queue ---------------------------------------------------------------------------------------
    def add_request(self, req: RequestState) -> None:
        self.waiting.append(req)
        self.num_waiting += 1
        self.pending_prefill_tokens += req.num_tokens - req.num_computed_tokens

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_work(self) -> bool:
        return bool(self.running) or self.num_waiting > 0

    # ---- decode-set helpers --------------------------------------------------------------------------
    def _decode_computed(self, req: RequestState, step: int) -> int:
        """Computed tokens of a decode request at the start of `step`."""
        return req.decode_start_computed + self._decode_emitted(req, step - req.decode_start_step)

    def _decode_phase(self, req: RequestState) -> int:
        return (req.decode_start_computed - req.decode_start_step) % self.block_size

    # -- decode-set hooks (one token per request per step here) --
    def _decode_steps(self, req: RequestState) -> int:
        """Decode steps req needs from now on to emit the rest of its output."""
        return req.max_output_tokens - req.num_output_tokens

    def _decode_emitted(self, req: RequestState, steps: int) -> int:
        """Output tokens req has emitted after `steps` of its decode steps."""
        return steps

    def _decode_blocks_held(self, req: RequestState, step: int) -> int:
        """KV blocks a decode request holds at the start of `step`, before that step takes its own."""
        return blocks_for(self._decode_computed(req, step), self.block_size)

    def _decode_block_needs(self, step: int) -> int:
        """KV blocks the whole decode set takes at the start of `step`."""
        return self._phase_counts[(-step) % self.block_size] if self.num_decode else 0

    def _decode_block_need(self, req: RequestState, step: int) -> int:
        """KV blocks one decode request takes at the start of `step`."""
        return int(self._decode_computed(req, step) % self.block_size == 0)

    def _decode_growth(self, step: int) -> int:
        """Tokens the decode set's contexts grow by with `step`."""
        return self.num_decode

    def _track_decode(self, req: RequestState, step: int, sign: int) -> None:
        """Add (sign 1, at joining) or remove (sign -1, from `step` on) req's share of the decode indexes."""
        self._phase_counts[self._decode_phase(req)] += sign

    # --
    def _join_decode(self, req: RequestState, step: int) -> None:
        """req decodes from `step` on; its last token comes at finish_step."""
        req.status = Status.DECODE
        req.decode_start_step = step
        req.decode_start_computed = req.num_computed_tokens
        req.decode_start_output = req.num_output_tokens
        req.finish_step = step + self._decode_steps(req) - 1
        self.num_decode += 1
        self.decode_computed_sum += req.num_computed_tokens
        self._track_decode(req, step, 1)
        self._finishing.setdefault(req.finish_step, []).append(req)

    def _leave_decode(self, req: RequestState, step: int) -> None:
        """Materialise req's counters as of the start of `step` and drop it from the running sums."""
        computed = self._decode_computed(req, step)
        req.num_blocks = self._decode_blocks_held(req, step)
        req.num_computed_tokens = computed
        req.num_output_tokens = req.decode_start_output + self._decode_emitted(
            req, step - req.decode_start_step
        )
        self.num_decode -= 1
        self.decode_computed_sum -= computed
        self._track_decode(req, step, -1)
        req.finish_step = -1  # invalidates its entry in self._finishing

    def _close_segment(self, req: RequestState, last_step: int) -> None:
        if req.segment_start >= 0 and last_step >= req.segment_start:
            req.segments.append((req.segment_start, last_step))
        req.segment_start = -1

    # ---- planning ------------------------------------------------------------------------------------
    def _preempt_last(self, step: int) -> RequestState:
        """Preempt the most recently admitted running request (vLLM's FCFS victim) by recompute."""
        _, req = self.running.popitem()
        if req.status == Status.DECODE:
            self._leave_decode(req, step)
            self._close_segment(req, step - 1)
            self.pending_prefill_tokens += req.num_tokens  # all of it, recomputed
        else:
            self.prefilling.pop()
            self.pending_prefill_tokens += req.num_computed_tokens  # what it had computed, again
        self._release(req)
        req.num_recomputed_tokens += req.num_computed_tokens
        req.num_computed_tokens = 0
        req.num_blocks = 0
        req.num_preemptions += 1
        req.status = Status.WAITING
        self.waiting.appendleft(req)
        self.num_waiting += 1
        self.num_preemptions += 1
        return req

    def schedule(self) -> StepPlan:
        """Plan the next step. The plan may be empty (nothing runnable); the caller then waits for work."""
        step = self.step_index
        bs = self.block_size
        q = self.decode_query_tokens
        budget = self.config.max_num_batched_tokens - self.num_decode * q
        decode_needs = self._decode_block_needs(step)

        # Chunks for running requests that are still prefilling (they follow every decode in running order).
        chunks: list[int] = []
        chunk_needs: list[int] = []
        for req in self.prefilling:
            n = min(req.num_tokens - req.num_computed_tokens, budget)
            if n <= 0:
                break  # no budget left for this one (and so none for those after it)
            chunks.append(n)
            chunk_needs.append(blocks_for(req.num_computed_tokens + n, bs) - req.num_blocks)
            budget -= n

        # Preempt from the end of the running order until the rest fits in the free blocks.
        preempted: list[RequestState] = []
        while self.running and decode_needs + sum(chunk_needs) > self.kv.num_free_blocks:
            victim = self.running[next(reversed(self.running))]
            if victim.status == Status.DECODE:
                decode_needs -= self._decode_block_need(victim, step)
                budget += q
            elif len(chunks) == len(self.prefilling):  # the victim is the last prefill and had a chunk
                budget += chunks.pop()
                chunk_needs.pop()
            preempted.append(self._preempt_last(step))

        prefill_reqs = self.prefilling[: len(chunks)]
        for req, need in zip(prefill_reqs, chunk_needs, strict=True):
            self._take_blocks(need)
            req.num_blocks += need
        self._take_blocks(decode_needs)

        self._loaded_blocks = 0
        if not preempted:
            self._admit_waiting(budget, prefill_reqs, chunks)

        num_decode = self.num_decode
        contexts = tuple(req.num_computed_tokens + n for req, n in zip(prefill_reqs, chunks, strict=True))
        completing = sum(1 for req, ctx in zip(prefill_reqs, contexts, strict=True) if ctx == req.num_tokens)
        batch = StepBatch(
            num_decode_seqs=num_decode,
            decode_context_tokens=self.decode_computed_sum + num_decode * q,
            prefill_new_tokens=tuple(chunks),
            prefill_context_tokens=contexts,
            num_sampled_seqs=num_decode + completing,
            decode_query_tokens=q,
        )
        return StepPlan(
            step, batch, tuple(prefill_reqs), tuple(chunks), tuple(preempted), self._loaded_blocks
        )

    def _take_blocks(self, num_blocks: int) -> None:
        if not self.kv.allocate(num_blocks):
            raise AssertionError("planned more KV blocks than are free; preemption should have prevented it")

    def _admit_waiting(self, budget: int, prefill_reqs: list[RequestState], chunks: list[int]) -> None:
        """Admit from the front of the waiting queue into the leftover budget (rule 3)."""
        bs = self.block_size
        max_num_seqs = self.config.max_num_seqs
        waiting = self.waiting
        while budget > 0 and waiting and len(self.running) < max_num_seqs:
            req = waiting[0]
            if req.status == Status.FAILED:  # aborted while waiting
                waiting.popleft()
                continue
            hits = loaded = idle = 0
            hashes = req.block_hashes
            external = req.num_external_tokens  # KV a connector delivered (disaggregated prefill)
            if hashes is not None and self.config.enable_prefix_caching and not external:
                # at least one token is computed: a full hit recomputes the last block's tokens
                most = (req.num_tokens - 1) // bs
                hits, idle = self.kv.hit_and_evictable(hashes, most)
                if self.kv.cpu_capacity:
                    loaded = self.kv.offloaded_hit(hashes, hits, most)
            # at least one token is computed, as with a full cache hit: its logits give the next token
            computed = min(external, req.num_tokens - 1) if external else (hits + loaded) * bs
            remaining = req.num_tokens - computed
            n = min(remaining, budget)
            if n < remaining and not self.config.enable_chunked_prefill:
                break
            need = blocks_for(computed + n, bs) - hits
            if hits:
                # the hit blocks are taken first (unreferenced ones leave the free count), so allocating the
                # new blocks can never evict them
                assert hashes is not None
                if need > self.kv.num_free_blocks - idle:
                    break
                self.kv.take_cached(hashes[:hits])
                req.cached_hashes = list(hashes[:hits])
                req.num_hashed_blocks = hits
                req.num_computed_tokens = computed
            if not self.kv.allocate(need):
                break
            if external:
                req.num_computed_tokens = computed
            if loaded:  # blocks loaded from the host tier: the request's own, cached again on the device
                assert hashes is not None
                for h in hashes[hits : hits + loaded]:
                    if self.kv.cache(h):
                        req.cached_hashes.append(h)
                req.num_hashed_blocks = hits + loaded
                req.num_computed_tokens = computed
                self.kv.cpu_hit_blocks += loaded
                self._loaded_blocks += loaded
            waiting.popleft()
            self.num_waiting -= 1
            self.pending_prefill_tokens -= computed  # cached or delivered: never computed here
            if req.num_cached_tokens < 0:
                req.num_cached_tokens = 0 if external else computed
            req.num_blocks = hits + need
            req.status = Status.PREFILL
            self.running[req.req_id] = req
            self.prefilling.append(req)
            prefill_reqs.append(req)
            chunks.append(n)
            budget -= n

    # ---- applying a finished step ------------------------------------------------------------------
    def update_from_step(self, plan: StepPlan, end_s: float) -> list[RequestState]:
        """Apply the step that just ended at end_s; return the requests that finished with it."""
        step = plan.step_index
        finished: list[RequestState] = []
        self.num_computed_tokens_total += plan.batch.num_tokens
        self.decode_computed_sum += self._decode_growth(step)
        for req in self._finishing.pop(step, ()):
            if req.status == Status.DECODE and req.finish_step == step:
                self._leave_decode(req, step + 1)
                self._finish(req, step, end_s)
                finished.append(req)

        caching = self.config.enable_prefix_caching
        for req, n in zip(plan.prefill_reqs, plan.prefill_tokens, strict=True):
            req.num_computed_tokens += n
            self.pending_prefill_tokens -= n
            if caching and req.block_hashes is not None:
                self._offer_full_blocks(req)
            if req.num_computed_tokens < req.num_tokens:
                continue  # chunked prefill goes on next step
            self.prefilling.remove(req)
            req.num_output_tokens += 1
            if req.num_output_tokens == 1:
                req.first_token_s = end_s
            req.segment_start = step
            if req.num_output_tokens >= req.max_output_tokens:
                self._finish(req, step, end_s)
                finished.append(req)
            else:
                self._join_decode(req, step + 1)
        self.step_index = step + 1
        return finished

    def _finish(self, req: RequestState, step: int, end_s: float) -> None:
        del self.running[req.req_id]
        self._release(req)
        req.num_blocks = 0
        req.status = Status.FINISHED
        req.end_s = end_s
        self._close_segment(req, step)

    # ---- prefix caching ----------------------------------------------------------------------------------
    def _offer_full_blocks(self, req: RequestState) -> None:
        """Offer the request's newly full blocks to the cache (vLLM caches a block once it is full)."""
        assert req.block_hashes is not None
        full = min(req.num_computed_tokens // self.block_size, len(req.block_hashes))
        for i in range(req.num_hashed_blocks, full):
            h = req.block_hashes[i]
            if self.kv.cache(h):
                req.cached_hashes.append(h)
        req.num_hashed_blocks = max(req.num_hashed_blocks, full)

    def _release(self, req: RequestState) -> None:
        """Give back every block the request holds: its cached blocks become evictable (still hit), the
        rest free. Blocks filled while decoding are offered to the cache first (their counters were lazy)."""
        if req.block_hashes is not None and self.config.enable_prefix_caching:
            self._offer_full_blocks(req)
        if req.cached_hashes:
            self.kv.free(req.num_blocks - len(req.cached_hashes))
            self.kv.release_cached(req.cached_hashes)
            req.cached_hashes = []
        else:
            self.kv.free(req.num_blocks)
        req.num_hashed_blocks = 0

    # ---- runs of pure decode steps (event skipping) ----------------------------------------------------
    def decode_run_length(self, limit: int) -> int:
        """How many of the next steps (at most limit) are certainly pure decode steps that schedule() would
        plan without preempting or admitting anything: nothing prefilling, nothing waiting, enough free KV
        blocks for every block boundary the run crosses, and no request finishing before the run's last
        step (requests may finish *with* the last step: the batch only changes after it). 0 when the next
        step is not such a step."""
        if self.prefilling or self.num_waiting or not self.num_decode:
            return 0
        step = self.step_index
        next_finish = min(self._finishing, default=step + limit)  # stale keys only shorten the run
        k_max = min(limit, next_finish - step + 1)
        free = self.kv.num_free_blocks
        phases, bs = self._phase_counts, self.block_size
        need = 0
        for j in range(k_max):
            need += phases[(-(step + j)) % bs]
            if need > free:
                return j
        return k_max

    def decode_batch(self, j: int) -> StepBatch:
        """The batch of the j-th step of a pure decode run starting at step_index (what schedule() builds)."""
        n = self.num_decode
        return StepBatch(n, self.decode_computed_sum + j * n + n, (), (), n)

    def allocate_decode_run(self, k: int) -> list[int]:
        """Take the KV blocks schedule() would take over k pure decode steps (a run's plans, made at its
        start); returns each step's blocks, so that a truncated run can give back the ones not started."""
        step, bs, phases = self.step_index, self.block_size, self._phase_counts
        needs = [phases[(-(step + j)) % bs] for j in range(k)]
        self._take_blocks(sum(needs))
        return needs

    def commit_decode_run(self, k: int, end_s: float) -> list[RequestState]:
        """Apply k pure decode steps, the last ending at end_s, as update_from_step would; return the
        requests that finished with the last step (decode_run_length lets none finish earlier)."""
        n = self.num_decode
        self.num_computed_tokens_total += k * n
        self.decode_computed_sum += k * n
        last = self.step_index + k - 1
        self.step_index = last + 1
        finished: list[RequestState] = []
        for req in self._finishing.pop(last, ()):
            if req.status == Status.DECODE and req.finish_step == last:
                self._leave_decode(req, last + 1)
                self._finish(req, last, end_s)
                finished.append(req)
        return finished

    # ---- aborts (client timeouts) --------------------------------------------------------------------
    def abort(self, req: RequestState, reason: str, now_s: float) -> None:
        """Drop a request the client gave up on, freeing what it holds (vLLM aborts on disconnect)."""
        if req.status == Status.WAITING:
            self.num_waiting -= 1  # removed lazily from the deque
            self.pending_prefill_tokens -= req.num_tokens - req.num_computed_tokens
        elif req.status == Status.DECODE:
            self._leave_decode(req, self.step_index)
            self._close_segment(req, self.step_index - 1)
            del self.running[req.req_id]
            self._release(req)
        elif req.status == Status.PREFILL:
            self.prefilling.remove(req)
            self.pending_prefill_tokens -= req.num_tokens - req.num_computed_tokens
            del self.running[req.req_id]
            self._release(req)
        else:
            return
        req.num_blocks = 0
        req.status = Status.FAILED
        req.fail_reason = reason
        req.end_s = now_s

    # ---- invariants (tests) --------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Recompute the running sums from scratch and compare; raise AssertionError on any drift."""
        step = self.step_index
        used = 0
        decode = [r for r in self.running.values() if r.status == Status.DECODE]
        for req in self.running.values():
            blocks = req.num_blocks
            if req.status == Status.DECODE:
                blocks = self._decode_blocks_held(req, step)
            used += blocks - len(req.cached_hashes)  # cached blocks are counted once, below, however shared
            if req.status != Status.DECODE:
                assert req.num_computed_tokens <= req.num_tokens
        used += sum(1 for r in self.kv.refs.values() if r > 0)
        assert used == self.kv.num_used_blocks, (used, self.kv.num_used_blocks)
        self.kv.check()
        held = [h for r in self.running.values() for h in r.cached_hashes]
        for h in set(held):
            assert self.kv.refs[h] == held.count(h), "a cached block's reference count is its holders'"
        assert self.kv.num_used_blocks <= self.kv.num_blocks
        assert len(decode) == self.num_decode
        assert sum(self._decode_computed(r, step) for r in decode) == self.decode_computed_sum
        assert len(self.running) <= self.config.max_num_seqs
        statuses = [r.status for r in self.running.values()]
        assert statuses == sorted(statuses, key=lambda s: s != Status.DECODE), "decodes must precede prefills"
        assert sum(1 for r in self.waiting if r.status == Status.WAITING) == self.num_waiting
        pending = sum(
            r.num_tokens - r.num_computed_tokens for r in self.waiting if r.status == Status.WAITING
        )
        pending += sum(r.num_tokens - r.num_computed_tokens for r in self.prefilling)
        assert pending == self.pending_prefill_tokens, (pending, self.pending_prefill_tokens)
