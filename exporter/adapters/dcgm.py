"""NVIDIA dcgm-exporter, the GPU source for engines without GPU metrics of their own.

Reference: shared/reference/engine-metrics.md section 4.3 (dcgm-exporter 3.x-4.x default counters).
Rows sharing a metric but not a part add up: total memory is used + free + reserved.
"""

from infersight.exporter.adapters.base import Adapter, Row, Unit
from infersight.exporter.schema import M

ROWS = (
    Row(M.GPU_UTILIZATION_RATIO, "DCGM_FI_DEV_GPU_UTIL", unit=Unit.PERCENT),  # default counters, 0-100
    # alias: profiling-only deployments (dcp-metrics-included.csv), already 0..1.
    Row(M.GPU_UTILIZATION_RATIO, "DCGM_FI_PROF_GR_ENGINE_ACTIVE"),
    Row(M.GPU_MEMORY_USED_BYTES, "DCGM_FI_DEV_FB_USED", unit=Unit.MEBIBYTES),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_USED", unit=Unit.MEBIBYTES, part="used"),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_FREE", unit=Unit.MEBIBYTES, part="free"),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "DCGM_FI_DEV_FB_RESERVED", unit=Unit.MEBIBYTES, part="reserved"),  # 3.3+
    Row(M.GPU_POWER_WATTS, "DCGM_FI_DEV_POWER_USAGE"),
)

# DCGM is a GPU source, not an engine: its series take the engine label of the target they serve.
ADAPTER = Adapter(
    engine=None,
    rows=ROWS,
    model_label=None,
    gpu_labels=("UUID", "uuid"),  # uuid: --use-old-namespace
)
