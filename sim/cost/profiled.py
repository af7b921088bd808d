"""Device time from a calibration profile: the fitted model of measured step times.

Inside the measured range the fit answers (its held-out error is in the profile). Beyond it -- a step with
more tokens, more KV traffic or more sequences than any measured -- a fit would extrapolate blindly, so the
roofline takes over, scaled by the ratio fit / roofline at the edge of the measured range along the same
direction. Such a step is marked ``extrapolated``; the replica's ledger counts them and the run warns.

The torch method times the model's forward pass only; vLLM adds host work to every step (scheduling,
sampling, detokenising, streaming), so `engine_overhead_s` is added on top of such a profile's fit. Stateless
(see sim/cost/base.py): one instance prices the steps of every replica.
"""

from __future__ import annotations

import numpy as np

from sim.cost.base import DeviceParts, DeviceRunParts, DeviceTimeModel, IntColumn, StepBatch
from sim.cost.roofline import RooflineStepTime
from sim.profile import StepSection


class ProfiledStepTime(DeviceTimeModel):
    name = "profile"

    def __init__(
        self,
        steps: StepSection,
        roofline: RooflineStepTime,
        *,
        engine_overhead_s: float,
        provenance: dict[str, str],
    ):
        """engine_overhead_s: host time per step added to the fit (0 when the measured steps include it)."""
        self.fit = steps.fit
        self.roofline = roofline
        self.overhead_s = engine_overhead_s
        self.provenance = provenance
        c = self.fit.coefficients
        self._intercept = self.fit.intercept_s
        self._token_seconds = self.fit.token_curve()  # piecewise linear between the fit's token knots
        self._per_pair = c["attention_pairs"]
        self._per_kv, self._per_seq = c["kv_read_tokens"], c["num_seqs"]
        self._max_tokens, self._max_kv, self._max_seqs = (
            self.fit.max_num_tokens,
            self.fit.max_kv_read_tokens,
            self.fit.max_num_seqs,
        )

    def _fit(self, tokens: float, pairs: float, kv: float, seqs: float) -> float:
        return (
            self._intercept
            + self._token_seconds(tokens)
            + self._per_pair * pairs
            + self._per_kv * kv
            + self._per_seq * seqs
        )

    def _seconds(self, rows: float, pairs: float, kv: float, seqs: float) -> tuple[float, bool]:
        """Fitted seconds of a step with these features, and whether it lay beyond the measured range."""
        scale = min(1.0, self._max_tokens / rows, self._max_seqs / seqs, self._max_kv / kv if kv else 1.0)
        if scale >= 1.0:
            return self._fit(rows, pairs, kv, seqs), False
        edge = self._fit(rows * scale, pairs * scale * scale, kv * scale, seqs * scale)
        roof_edge = max(
            self.roofline.time_from_features(rows * scale, pairs * scale * scale, kv * scale, seqs * scale)
        )
        roof = max(self.roofline.time_from_features(rows, pairs, kv, seqs))
        return roof * edge / roof_edge, True

    def parts(self, batch: StepBatch, padding_tokens: int, padding_seqs: int) -> DeviceParts:
        tokens, pairs, kv = batch.work()
        rows = tokens + padding_tokens
        seqs = batch.num_decode_seqs + len(batch.prefill_new_tokens) + padding_seqs
        seconds, extrapolated = self._seconds(rows, pairs, kv, seqs)
        return DeviceParts(seconds, 0.0, self.roofline.communication_s(rows), extrapolated)

    def decode_run_parts(
        self, num_seqs: int, padding_tokens: int, padding_seqs: int, contexts: IntColumn
    ) -> DeviceRunParts:
        """parts() of each step of a pure decode run. Inside the measured range the fit is vectorised with
        the scalar path's operations in its order (bit-identical); steps beyond it go one by one."""
        rows = num_seqs + padding_tokens
        seqs = num_seqs + padding_seqs
        comm = self.roofline.communication_s(rows)
        fixed = self._intercept + self._token_seconds(rows)
        if isinstance(contexts, list):
            compute: list[float] = []
            extrapolated: list[bool] = []
            for context in contexts:  # a decode step attends as many pairs as it reads KV tokens
                seconds, beyond = self._seconds(rows, context, context, seqs)
                compute.append(seconds)
                extrapolated.append(beyond)
            return DeviceRunParts(compute, [0.0] * len(contexts), comm, extrapolated)
        kv = np.asarray(contexts)
        inside = (rows <= self._max_tokens) & (seqs <= self._max_seqs) & (kv <= self._max_kv)
        fitted = fixed + self._per_pair * kv + self._per_kv * kv + self._per_seq * seqs
        if not inside.all():
            fitted = fitted.astype(np.float64)
            for j in np.flatnonzero(~inside):
                fitted[j], _ = self._seconds(rows, int(kv[j]), int(kv[j]), seqs)
        return DeviceRunParts(fitted, np.zeros(len(kv)), comm, ~inside)
