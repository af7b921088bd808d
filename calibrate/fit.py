"""Fits from measured points, with their error on points the fit did not see.

Step time: seconds = intercept + a x tokens + b x attention pairs + c x KV tokens read + d x sequences,
non-negative coefficients (scipy.optimize.nnls), so each term keeps its physical meaning (per-step fixed
cost, matmul work, attention work, KV traffic, per-sequence work). Every k-th point (k = 4) is held out;
R^2 and the relative residuals are computed on those.

All-reduce: t = a + b x bytes by least squares, then a = 2(n-1) alpha, b = 2(n-1)/n / bandwidth.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from sim.profile import (
    STEP_FEATURES,
    CollectiveSample,
    FitQuality,
    KernelFit,
    KernelSample,
    StepFit,
    StepSample,
    knot_feature,
    token_segments,
)

FEATURES = STEP_FEATURES
HOLDOUT_EVERY = 4


def _design(samples: list[StepSample], knots: tuple[int, ...] = ()) -> np.ndarray:
    rows = [
        [
            1.0,
            token_segments(float(s.num_tokens), knots)[0],
            float(s.attention_pairs),
            float(s.kv_read_tokens),
            float(s.num_seqs),
            *token_segments(float(s.num_tokens), knots)[1:],
        ]
        for s in samples
    ]
    return np.asarray(rows)


def _quality(pred: np.ndarray, actual: np.ndarray, num_train: int) -> FitQuality:
    rel = np.abs(pred - actual) / actual
    ss_res = float(np.sum((actual - pred) ** 2))
    ss_tot = float(np.sum((actual - actual.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return FitQuality(
        r2=r2,
        max_rel_residual=float(rel.max()),
        p95_rel_residual=float(np.percentile(rel, 95)),
        num_train=num_train,
        num_test=len(actual),
    )


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    test = np.zeros(n, dtype=bool)
    if n >= 2 * HOLDOUT_EVERY:
        test[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY] = True
    return ~test, test


def nnls_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, FitQuality]:
    """Non-negative least squares weighted by 1/time (small steps matter as much as big ones), columns
    scaled for conditioning; quality measured on the held-out points."""
    train, test = split(len(y))
    weights = 1.0 / y[train]
    scale = x[train].max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((x[train] / scale) * weights[:, None], y[train] * weights)
    coef = coef / scale
    evaluate = test if test.any() else train
    return coef, _quality(x[evaluate] @ coef, y[evaluate], int(train.sum()))


def fit_steps(samples: list[StepSample], knots: tuple[int, ...] = ()) -> StepFit:
    """The step-time fit; knots split the token term into segments of their own slope (sim/profile.py)."""
    names = [*FEATURES, *(knot_feature(k) for k in knots)]
    if len(samples) < len(names) + 1:
        raise ValueError(f"need at least {len(names) + 1} step samples to fit, got {len(samples)}")
    coef, quality = nnls_fit(_design(samples, knots), np.array([s.seconds for s in samples]))
    return StepFit(
        intercept_s=float(coef[0]),
        coefficients={f: float(c) for f, c in zip(names, coef[1:], strict=True)},
        token_knots=list(knots),
        quality=quality,
        max_num_tokens=max(s.num_tokens for s in samples),
        max_kv_read_tokens=max(s.kv_read_tokens for s in samples),
        max_num_seqs=max(s.num_seqs for s in samples),
    )


def linear_in_layers(depths: list[int], seconds: list[float], target: int) -> tuple[float, float]:
    """Extrapolate a time measured at a few depths to `target` layers; return (time, R^2 of the line)."""
    d = np.asarray(depths, float)
    t = np.asarray(seconds, float)
    slope, intercept = np.polyfit(d, t, 1) if len(d) > 1 else (t[0] / d[0], 0.0)
    pred = intercept + slope * d
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum((t - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return float(intercept + slope * target), r2


def fit_alpha_beta(samples: list[CollectiveSample], ranks: int) -> tuple[float, float, FitQuality]:
    """(hop latency s, link bandwidth GB/s, quality) of a ring all-reduce from (bytes, seconds) points."""
    x = np.array([s.message_bytes for s in samples], float)
    y = np.array([s.seconds for s in samples], float)
    train, test = split(len(samples))
    design = np.stack([np.ones_like(x), x], axis=1)
    w = 1.0 / y[train]
    coef, _ = nnls(design[train] * w[:, None], y[train] * w)
    a, b = coef
    evaluate = test if test.any() else train
    quality = _quality(design[evaluate] @ coef, y[evaluate], int(train.sum()))
    hops = 2 * (ranks - 1)
    alpha = a / hops
    bandwidth = hops / ranks / b / 1e9 if b > 0 else float("inf")
    return alpha, bandwidth, quality


KERNEL_FEATURES = ("kv_read_tokens", "attention_pairs", "num_seqs")


def fit_kernel(samples: list[KernelSample]) -> KernelFit:
    """Per-layer attention time of a kernel: intercept + KV traffic + attention work + per-sequence cost."""
    if len(samples) < len(KERNEL_FEATURES) + 1:
        raise ValueError(
            f"need at least {len(KERNEL_FEATURES) + 1} kernel samples to fit, got {len(samples)}"
        )
    x = np.asarray([[1.0, *(float(getattr(s, f)) for f in KERNEL_FEATURES)] for s in samples])
    coef, quality = nnls_fit(x, np.array([s.kernel_s for s in samples]))
    return KernelFit(
        intercept_s=float(coef[0]),
        coefficients={f: float(c) for f, c in zip(KERNEL_FEATURES, coef[1:], strict=True)},
        quality=quality,
    )
