"""NVIDIA dcgm-exporter, the GPU source for engines without GPU metrics of their own.

Reference: shared/reference/engine-metrics.md section 4.3 (dcgm-exporter 3.x-4.x default counters).
Rows sharing a metric but not a part add up: total memory is used + free + reserved, unless the
deployment exports the total itself (DCGM_FI_DEV_FB_TOTAL, a lower alternative).
"""

from infersight.exporter.adapters.base import Adapter, Row, Unit
from infersight.exporter.schema import M

ROWS = (
    Row(M.GPU_UTILIZATION_RATIO, "DCGM_FI_DEV_GPU_UTIL", unit=Unit.PERCENT),  # default counters, 0-100
    # alias: profiling-only deployments (dcp-metrics-included.csv), already 0..1.
    Row(M.GPU_UTILIZATION_RATIO, "DCGM_FI_PROF_GR_ENGINE_ACTIVE"),
    Row(M.GPU_MEMORY_USED_BYTES, "DCGM_FI_DEV_FB_USED", unit=Unit.MEBIBYTES),
    # The installed memory itself where the deployment's counters CSV enables DCGM_FI_DEV_FB_TOTAL
    # (not among the default counters, engine-metrics.md 4.3; named in the project's issue) ...
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_TOTAL", unit=Unit.MEBIBYTES),
    # ... else, per GPU, used + free + reserved (the default counters).
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_USED", unit=Unit.MEBIBYTES, part="used", alternative=1),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_FREE", unit=Unit.MEBIBYTES, part="free", alternative=1),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_RESERVED", unit=Unit.MEBIBYTES, part="reserved",  # 3.3+
        alternative=1),
    Row(M.GPU_POWER_WATTS, "DCGM_FI_DEV_POWER_USAGE"),
    # A default counter, in millijoules since boot (engine-metrics.md 4.3).
    Row(M.GPU_ENERGY_JOULES, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", unit=Unit.MILLIJOULES),
)

# DCGM is a GPU source, not an engine: its series take the engine label of the target they serve.
ADAPTER = Adapter(
    engine=None,
    rows=ROWS,
    model_label=None,
    gpu_labels=("UUID", "uuid"),  # uuid: --use-old-namespace
)
