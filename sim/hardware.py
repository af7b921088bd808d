"""Accelerator datasheet numbers (one chip) as the step-cost and memory models need them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from sim.registry import RegistryKey


def _kinds():
    from sim.hardware_kinds import HARDWARE_KINDS

    return HARDWARE_KINDS


class HardwareSpec(BaseModel):
    """One accelerator chip. Values come from catalog/hardware.yaml (datasheets) or inline in a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", description="Label used in reports.")
    kind: Annotated[str, RegistryKey(_kinds, "hardware kind")] = Field(
        ..., description="Selects vLLM's defaults and the runtime family (sim/hardware_kinds.py)."
    )
    source: str = Field("inline", description="Datasheet or measurement the numbers come from.")
    peak_bf16_tflops: float = Field(..., gt=0, description="Dense BF16 peak, TFLOP/s.")
    memory_bytes: int = Field(..., gt=0, description="Device memory the runtime can address, bytes.")
    memory_bandwidth_gbs: float = Field(..., gt=0, description="Device memory bandwidth, GB/s.")
    chips_per_host: int = Field(8, ge=1)
    links: dict[str, float] = Field(
        default_factory=dict, description="Interconnect name -> one-direction bandwidth per chip, GB/s."
    )
    kernel_tables: str | None = Field(
        None,
        description="The system folder of aiconfigurator-core holding NVIDIA's measured kernel tables of this "
        "GPU (calibrate --method kernel-tables; validate replay of its silicon measurements).",
    )

    @property
    def peak_flops(self) -> float:
        return self.peak_bf16_tflops * 1e12

    @property
    def memory_bandwidth_bytes_s(self) -> float:
        return self.memory_bandwidth_gbs * 1e9
