"""The one-paragraph answer a study ends with: which variant keeps its SLO attainment (through the spike,
when the scenario has one), by how much, what the difference follows, and the caveats a reader needs -- how
many runs stand behind it and whether the step times are calibrated or datasheet estimates.

Written from the study's own numbers (means over runs), never from a template that ignores them.
"""

from __future__ import annotations

import numpy as np

from sim.risk.study import Study

CALIBRATED = ("measured", "kernel tables")


def _mean(study: Study, label: str, metric: str) -> float:
    values = [d.metrics.get(metric, np.nan) for d in study.of(label)]
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _name(study: Study, label: str) -> str:
    return label or study.name


def verdict(study: Study) -> str:
    labels = study.labels
    spike = all(np.isfinite(_mean(study, label, "spike_attainment")) for label in labels)
    key = "spike_attainment" if spike else "slo_attainment_all"
    where = "through the spike" if spike else "over the run"
    ranked = sorted(
        labels,
        key=lambda label: (
            -_mean(study, label, key),
            -_mean(study, label, "goodput_rps"),
            _mean(study, label, "usd_per_1m_good_requests"),
        ),
    )
    best = ranked[0]
    target = study.base.monte_carlo.objective.min_attainment
    held = _mean(study, best, key)
    if held >= target:
        parts = [f"{_name(study, best)} keeps {held:.1%} SLO attainment {where}"]
    else:
        parts = [
            f"No variant keeps {target:.0%} SLO attainment {where}; the best, {_name(study, best)}, holds {held:.1%}"
        ]
    if len(ranked) > 1:
        others = ", ".join(f"{_name(study, label)} {_mean(study, label, key):.1%}" for label in ranked[1:])
        parts[0] += f" (against {others})"
    sentences = [parts[0] + "."]
    if len(ranked) > 1:
        sentences.append(_difference(study, best, ranked[1:]))
    cost = {label: _mean(study, label, "usd_per_1m_good_requests") for label in labels}
    if all(np.isfinite(c) for c in cost.values()):
        cheapest = min(cost, key=lambda label: cost[label])
        sentences.append(
            f"Cheapest per good request: {_name(study, cheapest)} at ${cost[cheapest]:,.0f} per million"
            + (f" (the leader: ${cost[best]:,.0f})." if cheapest != best else ".")
        )
    sentences.append(_caveats(study))
    return " ".join(s for s in sentences if s)


def _difference(study: Study, best: str, rest: list[str]) -> str:
    """What the gap follows: a slower time to a new ready replica, failed requests, or neither."""
    ready: dict[str, float] = {}
    for label in [best, *rest]:
        start = next((d.time_to_ready_s for d in study.of(label)), None)
        if start is not None:
            ready[label] = start
    slower = [label for label in rest if best in ready and ready.get(label, 0.0) > ready[best] * 1.2]
    if slower:
        times = ", ".join(f"{ready[label]:.0f} s ({_name(study, label)})" for label in slower)
        return f"The gap follows the time to a new ready replica: {ready[best]:.0f} s against {times}."
    failed = {label: _mean(study, label, "failed_requests") for label in rest}
    if any(v > 0 for v in failed.values()):
        lost = ", ".join(f"{_name(study, k)} {v:.0f}" for k, v in failed.items() if v > 0)
        return f"Failed requests (mean per run): {lost}."
    return "No variant lost requests; the gap is in latency at load."


def _caveats(study: Study) -> str:
    sources: dict[str, list[str]] = {}
    for label in study.labels:
        sources.setdefault(next(d.step_times for d in study.of(label)), []).append(_name(study, label))
    estimated = [s for s in sources if not any(s.startswith(c) for c in CALIBRATED)]
    runs = study.runs
    text = f"Caveats: {runs} run{'s' if runs != 1 else ''} per variant"
    if runs < 10:
        text += " (failover risk is a 0-or-1 guess below ~10 runs: add --runs 20)"
    text += "; step times: " + "; ".join(f"{s} ({', '.join(names)})" for s, names in sources.items())
    if estimated:
        text += " -- estimates, not measurements"
    return text + "."
