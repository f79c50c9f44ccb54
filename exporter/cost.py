"""The hourly cost of the hardware (and licence) behind a target."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

HOURS_PER_MONTH = 730  # 365 * 24 / 12, the figure cloud price sheets use


@dataclass(frozen=True)
class GpuPrice:
    dollars_per_hour: float
    vendor: str
    as_of: str
    source: str


def _load_prices() -> dict[str, GpuPrice]:
    raw = yaml.safe_load(resources.files("infersight.exporter").joinpath("gpu_prices.yaml").read_text(encoding="utf-8"))
    return {name: GpuPrice(float(row["dollars_per_hour"]), row["vendor"], str(row["as_of"]), row["source"])
            for name, row in raw.items()}


GPU_PRICES: dict[str, GpuPrice] = _load_prices()


def hourly_cost_dollars(gpu_count: int, gpu_hourly_dollars: float | None, gpu_type: str | None,
                        licence_monthly_dollars: float) -> float:
    """GPUs x $/GPU-hour (explicit, else the gpu_type list price) + licence $/month / 730."""
    per_gpu = gpu_hourly_dollars
    if per_gpu is None:
        per_gpu = GPU_PRICES[gpu_type].dollars_per_hour if gpu_type else 0.0
    return gpu_count * per_gpu + licence_monthly_dollars / HOURS_PER_MONTH
