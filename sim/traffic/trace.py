"""Recorded request traces in the formats production traces come in, read into arrays (and token identity).

Each format maps its own columns onto what a request needs (docs/workloads.md has the table):

| format         | file                   | arrival                         | prompt / output tokens              | token identity        |
|----------------|------------------------|---------------------------------|-------------------------------------|-----------------------|
| servesim       | CSV or JSONL           | arrival_s                       | input_tokens / output_tokens        | none                  |
| mooncake       | JSONL                  | timestamp (ms)                  | input_length / output_length        | hash_ids (512 tokens) |
| azure          | CSV (Azure LLM traces) | TIMESTAMP (date-time)           | ContextTokens / GeneratedTokens     | none                  |
| burstgpt       | CSV                    | Timestamp (s)                   | Request tokens / Response tokens    | none                  |
| token_ids      | JSONL(.gz) (vLLM bench)| arrival_time_ns or arrival_s    | input_tok_ids / output_tok_ids      | the token ids         |
| conversations  | CSV or JSONL           | arrival_s of a conversation's   | input_tokens (the new message) /    | history resent        |
|                |                        | first turn; think_time_s before | output_tokens                       | (pieces)              |
|                |                        | each later one (0 if absent)    |                                     |                       |

`format: auto` picks by the columns. Traces on a clock of their own (all but servesim and conversations)
are shifted to start at 0 (the first request); `rate_scale` divides the times (2 =
twice the rate); `start_s` / `end_s` keep a window of the trace. A bad value names the file, line and
column, and nothing is half-loaded: the trace is checked whole before anything is returned.
"""

from __future__ import annotations

import gzip
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import InputError
from sim.traffic.identity import (
    OUTPUT_SOURCE,
    HashIdIdentity,
    PieceIdentity,
    SubsetIdentity,
    TokenIdentity,
    TokenIdIdentity,
)
from sim.traffic.spec import TraceLengths

_FIELD = "workload.lengths.path"
MOONCAKE_BLOCK_TOKENS = 512  # Mooncake traces hash prompts in blocks of 512 tokens


@dataclass(frozen=True)
class TraceData:
    """A trace's requests, sorted by arrival (a conversation's turns follow their first turn)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    note: str
    identity: TokenIdentity | None = None
    session_id: np.ndarray | None = None
    follows: np.ndarray | None = None
    think_s: np.ndarray | None = None


def _read_frame(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".json.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as handle:
                rows = []
                for line_no, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise InputError(
                                f"trace {path} line {line_no}: not JSON ({exc.msg})", _FIELD
                            ) from None
            return pd.DataFrame(rows)
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read trace {path}: {exc}", _FIELD) from None


def _line(path: Path, row: int) -> int:
    """The file line of a data row (CSV: after the header)."""
    return row + (1 if path.suffix.lower() in {".jsonl", ".ndjson", ".gz"} else 2)


def _numbers(path: Path, frame: pd.DataFrame, column: str, *, integer: bool, low: float) -> np.ndarray:
    try:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    except (TypeError, ValueError):
        values = np.full(len(frame), np.nan)
    bad = ~np.isfinite(values) | (values < low)
    if integer:
        bad |= values != np.round(values)
    if bad.any():
        row = int(np.argmax(bad))
        want = "an integer >= " + str(int(low)) if integer else f"a number >= {low:g}"
        raise InputError(
            f"trace {path} line {_line(path, row)}: column {column}={_show(frame[column].iloc[row])} must be {want}",
            _FIELD,
        )
    return values


def _show(value) -> str:
    """A cell as it reads in the file (numpy scalars as plain numbers)."""
    return repr(value.item() if hasattr(value, "item") else value)


class TraceFormat(ABC):
    name: str
    columns: tuple[str, ...]  # the columns it needs (and recognises itself by)
    clock_origin: bool = True  # its times are on a clock of its own: shift them to start at 0

    def matches(self, frame: pd.DataFrame) -> bool:
        return all(c in frame.columns for c in self.columns)

    @abstractmethod
    def read(self, path: Path, frame: pd.DataFrame) -> TraceData: ...


def _check_columns(fmt: TraceFormat, path: Path, frame: pd.DataFrame) -> None:
    missing = [c for c in fmt.columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"trace {path} lacks column(s) {', '.join(missing)} (format {fmt.name} needs {', '.join(fmt.columns)})",
            _FIELD,
        )


class ServesimFormat(TraceFormat):
    name = "servesim"
    columns = ("arrival_s", "input_tokens", "output_tokens")
    clock_origin = False  # simulated seconds, as written

    def read(self, path, frame):
        arrival = _numbers(path, frame, "arrival_s", integer=False, low=0)
        prompt = _numbers(path, frame, "input_tokens", integer=True, low=1)
        output = _numbers(path, frame, "output_tokens", integer=True, low=1)
        return TraceData(arrival, prompt.astype(np.int64), output.astype(np.int64), "recorded trace")


class MooncakeFormat(TraceFormat):
    name = "mooncake"
    columns = ("timestamp", "input_length", "output_length", "hash_ids")

    def read(self, path, frame):
        arrival = _numbers(path, frame, "timestamp", integer=False, low=0) / 1000.0
        prompt = _numbers(path, frame, "input_length", integer=True, low=1).astype(np.int64)
        output = _numbers(path, frame, "output_length", integer=True, low=1).astype(np.int64)
        ids = frame["hash_ids"].tolist()
        for row, value in enumerate(ids):
            if not isinstance(value, list) or not all(isinstance(x, int) and x >= 0 for x in value):
                raise InputError(
                    f"trace {path} line {_line(path, row)}: column hash_ids must be a list of block ids",
                    _FIELD,
                )
        identity = HashIdIdentity(ids, MOONCAKE_BLOCK_TOKENS)
        return TraceData(arrival, prompt, output, "Mooncake trace (block hash ids)", identity)


class AzureFormat(TraceFormat):
    name = "azure"
    columns = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

    def read(self, path, frame):
        times = pd.to_datetime(frame["TIMESTAMP"], errors="coerce")
        if times.isna().any():
            row = int(np.argmax(times.isna().to_numpy()))
            raise InputError(
                f"trace {path} line {_line(path, row)}: column TIMESTAMP={frame['TIMESTAMP'].iloc[row]!r} is not a date-time",
                _FIELD,
            )
        arrival = (times - times.min()).dt.total_seconds().to_numpy()
        prompt = _numbers(path, frame, "ContextTokens", integer=True, low=1).astype(np.int64)
        output = _numbers(path, frame, "GeneratedTokens", integer=True, low=1).astype(np.int64)
        return TraceData(arrival, prompt, output, "Azure LLM inference trace")


class BurstGPTFormat(TraceFormat):
    name = "burstgpt"
    columns = ("Timestamp", "Request tokens", "Response tokens")

    def read(self, path, frame):
        response = pd.to_numeric(frame["Response tokens"], errors="coerce")
        failed = response == 0  # BurstGPT logs a failed request with 0 response tokens
        kept = frame[~failed].reset_index(drop=True)
        arrival = _numbers(path, kept, "Timestamp", integer=False, low=0)
        prompt = _numbers(path, kept, "Request tokens", integer=True, low=1).astype(np.int64)
        output = _numbers(path, kept, "Response tokens", integer=True, low=1).astype(np.int64)
        note = "BurstGPT trace" + (
            f" ({int(failed.sum())} failed requests, 0 response tokens, left out)" if failed.any() else ""
        )
        return TraceData(arrival, prompt, output, note)


class TokenIdsFormat(TraceFormat):
    name = "token_ids"
    columns = ("input_tok_ids", "output_tok_ids")

    def read(self, path, frame):
        column = "arrival_time_ns" if "arrival_time_ns" in frame.columns else "arrival_s"
        if column not in frame.columns:
            raise InputError(f"trace {path} lacks column arrival_time_ns (or arrival_s)", _FIELD)
        arrival = _numbers(path, frame, column, integer=False, low=0) / (
            1e9 if column == "arrival_time_ns" else 1.0
        )
        prompts, outputs = [], []
        for row, (ids, out) in enumerate(zip(frame["input_tok_ids"], frame["output_tok_ids"], strict=True)):
            if not isinstance(ids, list) or not ids or not isinstance(out, list) or not out:
                raise InputError(
                    f"trace {path} line {_line(path, row)}: input_tok_ids and output_tok_ids must be non-empty lists",
                    _FIELD,
                )
            prompts.append(np.asarray(ids, dtype=np.int64))
            outputs.append(len(out))
        output = np.asarray(outputs, dtype=np.int64)
        prompt = np.asarray([len(p) for p in prompts], dtype=np.int64)
        return TraceData(arrival, prompt, output, "trace with token ids", TokenIdIdentity(prompts, output))


class ConversationsFormat(TraceFormat):
    name = "conversations"
    columns = ("conversation_id", "turn", "arrival_s", "input_tokens", "output_tokens")
    clock_origin = False

    def read(self, path, frame):
        turn = _numbers(path, frame, "turn", integer=True, low=1)
        first_arrival = _numbers(path, frame, "arrival_s", integer=False, low=0)
        message = _numbers(path, frame, "input_tokens", integer=True, low=1).astype(np.int64)
        answer = _numbers(path, frame, "output_tokens", integer=True, low=1).astype(np.int64)
        think = (
            _numbers(path, frame, "think_time_s", integer=False, low=0)
            if "think_time_s" in frame.columns
            else np.zeros(len(frame))
        )
        order = np.lexsort((turn, frame["conversation_id"].astype(str).to_numpy()))
        conv_ids = frame["conversation_id"].astype(str).to_numpy()[order]
        starts: dict[str, float] = {}
        for i in order:
            cid = str(frame["conversation_id"].iloc[i])
            if turn[i] == 1:
                starts[cid] = first_arrival[i]
        n = len(frame)
        prompt = np.empty(n, np.int64)
        output = np.empty(n, np.int64)
        arrival = np.empty(n)
        follows = np.full(n, -1, np.int64)
        think_s = np.zeros(n)
        session = np.empty(n, np.int64)
        pieces: list[list[tuple[int, int, int]]] = []
        sessions: dict[str, int] = {}
        history: list[tuple[int, int, int]] = []
        length = 0
        previous = None
        for k, i in enumerate(order):
            cid = conv_ids[k]
            if cid not in starts:
                raise InputError(f"trace {path}: conversation {cid} has no turn 1", _FIELD)
            if cid != previous:
                history, length, previous = [], 0, cid
                expected = 1
            if turn[i] != expected:
                raise InputError(
                    f"trace {path} line {_line(path, int(i))}: conversation {cid} turn {int(turn[i])}, expected {expected}",
                    _FIELD,
                )
            expected += 1
            session[k] = sessions.setdefault(cid, len(sessions))
            history = [*history, (k, 0, int(message[i]))]
            length += int(message[i])
            prompt[k], output[k] = length, answer[i]
            arrival[k] = starts[cid]
            pieces.append([*history, (OUTPUT_SOURCE + k, 0, int(answer[i]))])
            if turn[i] > 1:
                follows[k], think_s[k] = k - 1, think[i]
            history = [*history, (OUTPUT_SOURCE + k, 0, int(answer[i]))]
            length += int(answer[i])
        return TraceData(
            arrival, prompt, output, f"conversation trace ({len(sessions)} conversations)",
            PieceIdentity(pieces), session, follows, think_s,
        )  # fmt: skip


TRACE_FORMATS: dict[str, TraceFormat] = {
    f.name: f
    for f in (
        ConversationsFormat(),
        MooncakeFormat(),
        TokenIdsFormat(),
        AzureFormat(),
        BurstGPTFormat(),
        ServesimFormat(),
    )
}


def load_trace(spec: TraceLengths) -> TraceData:
    """The trace of a scenario's workload.lengths: read, checked whole, started at 0, scaled and sliced."""
    path = Path(spec.path)
    if not path.exists():
        raise InputError(f"no such trace file: {path}", _FIELD)
    frame = _read_frame(path)
    if frame.empty:
        raise InputError(f"trace {path} has no requests", _FIELD)
    if spec.format == "auto":
        fmt = next((f for f in TRACE_FORMATS.values() if f.matches(frame)), None)
        if fmt is None:
            known = "; ".join(f"{f.name}: {', '.join(f.columns)}" for f in TRACE_FORMATS.values())
            raise InputError(f"trace {path} lacks column(s) of any known format ({known})", _FIELD)
    else:
        fmt = TRACE_FORMATS[spec.format]
        _check_columns(fmt, path, frame)
    data = fmt.read(path, frame)
    if not len(data.arrival_s):
        raise InputError(f"trace {path} has no requests", _FIELD)
    return _window(data, spec, data.arrival_s.min() if fmt.clock_origin else 0.0)


def _window(data: TraceData, spec: TraceLengths, origin: float) -> TraceData:
    """Times from `origin`, divided by rate_scale; keep [start_s, end_s) of the scaled trace; sort by arrival."""
    arrival = (data.arrival_s - origin) / spec.rate_scale
    keep = arrival >= spec.start_s
    if spec.end_s is not None:
        keep &= arrival < spec.end_s
    if data.follows is not None:  # a conversation is kept or dropped whole
        keep = _whole_conversations(keep, data.follows)
    index = np.flatnonzero(keep)
    index = index[np.argsort(arrival[index], kind="stable")]
    arrival = arrival[index] - spec.start_s
    remap = {int(old): new for new, old in enumerate(index)}
    follows = think = None
    if data.follows is not None:
        follows = np.asarray([remap[int(f)] if f >= 0 else -1 for f in data.follows[index]], dtype=np.int64)
        assert data.think_s is not None
        think = data.think_s[index] / spec.rate_scale
    identity = data.identity
    if identity is not None:
        identity = SubsetIdentity(identity, index)
    scaled = f", times / {spec.rate_scale:g}" if spec.rate_scale != 1 else ""
    return TraceData(
        arrival,
        data.prompt_tokens[index],
        data.output_tokens[index],
        data.note + scaled,
        identity,
        data.session_id[index] if data.session_id is not None else None,
        follows,
        think,
    )


def _whole_conversations(keep: np.ndarray, follows: np.ndarray) -> np.ndarray:
    root = np.arange(len(follows))
    for i, prev in enumerate(follows.tolist()):
        if prev >= 0:
            root[i] = root[prev]
    return keep[root]


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival_s, prompt_tokens, output_tokens) of a servesim-format trace, sorted by arrival time (stable,
    so ties keep file order), times as recorded."""
    data = ServesimFormat()
    frame = _read_frame(Path(path)) if Path(path).exists() else None
    if frame is None:
        raise InputError(f"no such trace file: {path}", _FIELD)
    if frame.empty:
        raise InputError(f"trace {path} has no requests", _FIELD)
    _check_columns(data, Path(path), frame)
    t = data.read(Path(path), frame)
    order = np.argsort(t.arrival_s, kind="stable")
    return t.arrival_s[order], t.prompt_tokens[order], t.output_tokens[order]
