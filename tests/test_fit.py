"""The fitters recover known models from synthetic measurements (no hardware involved)."""

from __future__ import annotations

import numpy as np
import pytest

from calibrate.fit import fit_alpha_beta, fit_steps, linear_in_layers, split
from calibrate.grid import step_grid
from sim.profile import CollectiveSample, StepSample


def _samples(noise: float, seed: int = 0) -> list[StepSample]:
    rng = np.random.default_rng(seed)
    out = []
    for p in step_grid(quick=False, max_model_len=8192, max_kv_tokens=2**22):
        t = (
            2e-3
            + 5e-6 * p.num_tokens
            + 1e-10 * p.attention_pairs
            + 3e-8 * p.kv_read_tokens
            + 1e-5 * p.num_seqs
        )
        out.append(
            StepSample(
                kind=p.kind,
                num_tokens=p.num_tokens,
                num_seqs=p.num_seqs,
                attention_pairs=p.attention_pairs,
                kv_read_tokens=p.kv_read_tokens,
                seconds=t * (1 + noise * rng.standard_normal()),
            )
        )
    return out


def test_step_fit_recovers_the_generating_model():
    fit = fit_steps(_samples(noise=0.0))
    assert fit.intercept_s == pytest.approx(2e-3, rel=1e-6)
    assert fit.coefficients["num_tokens"] == pytest.approx(5e-6, rel=1e-6)
    assert fit.coefficients["kv_read_tokens"] == pytest.approx(3e-8, rel=1e-6)
    assert fit.quality.r2 == pytest.approx(1.0) and fit.quality.max_rel_residual < 1e-9


def test_step_fit_quality_reflects_the_noise():
    fit = fit_steps(_samples(noise=0.05))
    assert 0.02 < fit.quality.p95_rel_residual < 0.2  # ~5% noise shows up on held-out points
    train, test = split(len(_samples(0.0)))
    assert fit.quality.num_test == test.sum() and fit.quality.num_train == train.sum()


def test_alpha_beta_fit():
    ranks, alpha, bandwidth = 4, 20e-6, 10e9
    samples = [
        CollectiveSample(message_bytes=b, seconds=6 * alpha + 1.5 * b / bandwidth)
        for b in [2**k for k in range(10, 27)]
    ]
    a, bw, quality = fit_alpha_beta(samples, ranks)
    assert a == pytest.approx(alpha, rel=1e-6) and bw == pytest.approx(10.0, rel=1e-6)
    assert quality.r2 == pytest.approx(1.0)


def test_linear_in_layers():
    t, r2 = linear_in_layers([1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5], 32)
    assert t == pytest.approx(32.5) and r2 == pytest.approx(1.0)
