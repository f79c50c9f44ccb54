"""The NVML GPU source: read the local GPUs in-process through nvidia-ml-py.

For a sidecar in the engine's pod (it sees the same devices as the engine) or a node-level
exporter. Each read returns unified GPU series keyed by GPU UUID, like the DCGM source.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import ModuleType

from infersight.exporter.normalize import Normalized
from infersight.exporter.schema import GPU_SIGNALS, M


class NvmlUnavailable(Exception):
    """NVML could not be loaded or read (no driver, no GPU, permission)."""


class NvmlReader:
    def __init__(self, devices: Sequence[str] = (), nvml: ModuleType | None = None):
        self.devices = set(devices)  # UUIDs or indices; empty: all
        self._nvml = nvml
        self._lock = threading.Lock()
        self._initialised = False

    def _library(self) -> ModuleType:
        if self._nvml is None:
            import pynvml  # nvidia-ml-py; imported late so that machines without it still start

            self._nvml = pynvml
        if not self._initialised:
            self._nvml.nvmlInit()
            self._initialised = True
        return self._nvml

    def read(self) -> Normalized:
        """Blocking; run it in a worker thread. Raises NvmlUnavailable."""
        with self._lock:
            try:
                return self._read(self._library())
            except NvmlUnavailable:
                raise
            except Exception as exc:  # pynvml.NVMLError and its many subclasses, or a missing library
                self._initialised = False
                raise NvmlUnavailable(f"{type(exc).__name__}: {exc}") from None

    def _read(self, nvml: ModuleType) -> Normalized:
        result = Normalized()
        for metric in GPU_SIGNALS:
            if metric is not M.GPU_ENERGY_JOULES:  # only where a device reports it (below)
                result.series[metric] = {}
                result.available[metric] = True
        energy: dict[tuple[str, ...], float] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            if self.devices and uuid not in self.devices and str(index) not in self.devices:
                continue
            key = (uuid,)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            result.series[M.GPU_UTILIZATION_RATIO][key] = nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100
            result.series[M.GPU_MEMORY_USED_BYTES][key] = float(memory.used)
            result.series[M.GPU_MEMORY_TOTAL_BYTES][key] = float(memory.total)
            result.series[M.GPU_POWER_WATTS][key] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000  # mW
            millijoules = _energy_millijoules(nvml, handle)
            if millijoules is not None:
                energy[key] = millijoules / 1000
        if energy:
            result.series[M.GPU_ENERGY_JOULES] = energy
            result.available[M.GPU_ENERGY_JOULES] = True
        return result


def _energy_millijoules(nvml: ModuleType, handle) -> float | None:
    """nvmlDeviceGetTotalEnergyConsumption: millijoules since the driver was loaded (nvidia-ml-py
    returns them as ``c_millijoules``); None where the GPU (pre-Volta) or the binding lacks it."""
    read = getattr(nvml, "nvmlDeviceGetTotalEnergyConsumption", None)
    if read is None:
        return None
    try:
        return float(read(handle))
    except Exception:  # pynvml.NVMLError_NotSupported and kin: this device has no energy counter
        return None
