"""Trace readers (sim/traffic/trace.py): every format on a small file written here, its column mapping,
token identity where the format has it, time scaling and slicing, and errors that name file, line, column."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from sim.errors import InputError
from sim.traffic.spec import TraceLengths
from sim.traffic.trace import load_trace


def _load(path, **kw):
    return load_trace(TraceLengths(kind="trace", path=str(path), **kw))


def _jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_mooncake_maps_milliseconds_lengths_and_hash_ids(tmp_path):
    rows = [
        {"timestamp": 1000, "input_length": 700, "output_length": 10, "hash_ids": [1, 2]},
        {"timestamp": 3500, "input_length": 600, "output_length": 20, "hash_ids": [1, 3]},
    ]
    t = _load(_jsonl(tmp_path / "m.jsonl", rows))
    assert t.arrival_s.tolist() == [0.0, 2.5] and t.prompt_tokens.tolist() == [700, 600]
    a, b = t.identity.block_hashes(0, 16), t.identity.block_hashes(1, 16)
    assert a[:32] == b[:32] and a[32] != b[32]  # the shared first 512-token block: 32 of our blocks


def test_azure_timestamps_and_burstgpt_failures(tmp_path):
    azure = tmp_path / "azure.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.1805900,396,109\n"
    )
    t = _load(azure)
    assert t.arrival_s == pytest.approx([0.0, 3.5]) and t.output_tokens.tolist() == [44, 109]
    burst = tmp_path / "burst.csv"
    burst.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n7,ChatGPT,1087,0,1087,Conversation log\n9,GPT-4,33,127,160,API log\n"
    )
    t = _load(burst)
    assert t.prompt_tokens.tolist() == [472, 33] and t.arrival_s.tolist() == [0.0, 4.0]
    assert "1 failed" in t.note


def test_token_ids_give_exact_identity(tmp_path):
    shared = list(range(100, 150))
    rows = [
        {"arrival_time_ns": 0, "input_tok_ids": shared + [1, 2], "output_tok_ids": [5, 6]},
        {"arrival_time_ns": 5 * 10**8, "input_tok_ids": shared + [3], "output_tok_ids": [7]},
    ]
    t = _load(_jsonl(tmp_path / "w.jsonl.gz", rows, gz=True))
    assert t.arrival_s.tolist() == [0.0, 0.5] and t.prompt_tokens.tolist() == [52, 51]
    a, b = t.identity.block_hashes(0, 16), t.identity.block_hashes(1, 16)
    assert a[:3] == b[:3]  # 48 shared tokens: 3 full blocks


def test_conversations_resend_history_and_follow_their_previous_turn(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "conversation_id,turn,arrival_s,input_tokens,output_tokens,think_time_s\n"
        "b,1,1.0,10,5,0\na,2,0.0,7,3,2.5\na,1,0.0,20,4,0\n"
    )
    t = _load(path)
    # a starts at 0 (turns 1, 2), b at 1; turn a2 = a1's message + answer + its own message
    assert t.prompt_tokens.tolist() == [20, 31, 10]
    assert t.follows.tolist() == [-1, 0, -1] and t.think_s.tolist() == [0.0, 2.5, 0.0]
    assert t.session_id.tolist() == [0, 0, 1]


def test_rate_scale_and_window(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{10 + i},5,5\n" for i in range(10)))
    t = _load(path, rate_scale=2.0, start_s=6.0, end_s=8.0)
    assert t.arrival_s.tolist() == [0.0, 0.5, 1.0, 1.5]  # times 5..9.5 after scaling; [6, 8) kept, from 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "m.jsonl",
            '{"timestamp": 1, "input_length": 0, "output_length": 1, "hash_ids": []}\n',
            "line 1: column input_length=0",
        ),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nnot a date,1,1\n", "line 2: column TIMESTAMP"),
        ("x.csv", "a,b\n1,2\n", "of any known format"),
        ("j.jsonl", '{"arrival_s": 1, "input_tokens": 1, "output_tokens": 1}\n{broken\n', "line 2: not JSON"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        _load(path)
    assert str(path) in str(err.value)


def test_prefix_caching_hits_the_public_workload_exactly():
    """The LLMServingSim workload's own token ids: how many prompt tokens a second request could find."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared/validation_public/llmservingsim/workloads"
    file = path / "sharegpt-llama-3.1-8b-300-sps10.jsonl.gz"
    if not file.exists():
        pytest.skip("the public validation workloads are not beside this checkout")
    t = _load(file)
    assert len(t.arrival_s) == 300 and np.all(np.diff(t.arrival_s) >= 0)
    hashes = [t.identity.block_hashes(i, 16) for i in range(300)]
    assert all(
        len(h) == (p + o) // 16 for h, p, o in zip(hashes, t.prompt_tokens, t.output_tokens, strict=True)
    )
