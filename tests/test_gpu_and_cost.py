"""GPU sources (dcgm-exporter, NVML) and the configured hourly cost, through the real exporter."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from infersight.exporter.cost import HOURS_PER_MONTH, hourly_cost_dollars
from infersight.exporter.nvml import NvmlReader, NvmlUnavailable
from infersight.exporter.schema import M
from tests.engine_server import EngineServer
from tests.harness import running_exporter, scrape, series

ENGINE = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 2\n'
DCGM = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aaa",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1"} 71
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-bbb",pci_bus_id="00000000:0F:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1"} 64
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-aaa",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1"} 301.5
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-bbb",pci_bus_id="00000000:0F:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1"} 288.25
"""

ENGINE_SERIES = [
    'llm_exporter_dropped_series_total{engine="vllm",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="connect",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="http_status",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="parse",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="redirect",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="timeout",target="a"} 0.0',
    'llm_exporter_scrape_errors_total{engine="vllm",reason="too_large",target="a"} 0.0',
    'llm_exporter_target_up{engine="vllm",target="a"} 1.0',
    'llm_requests_running{engine="vllm",model="m",target="a"} 2.0',
]


def signals(text: str, names: list[str]) -> list[str]:
    return [line for line in series(text, "a") if "signal_available" in line and any(n in line for n in names)]


@pytest.fixture
def engines():
    server = EngineServer()
    server.serve("/metrics", ENGINE)
    server.serve("/dcgm", DCGM)
    yield server
    server.close()


def test_dcgm_source_adds_gpu_series_for_the_target(engines: EngineServer) -> None:
    with running_exporter(engine="vllm", targets=[f"a={engines.url('/metrics')}"],
                          gpu={"source": "dcgm", "dcgm_url": engines.url("/dcgm"), "devices": ["0"]}) as url:
        text = series(scrape(url), "a")
    assert [line for line in text if "signal_available" not in line] == sorted(ENGINE_SERIES + [
        'llm_exporter_gpu_source_up{engine="vllm",source="dcgm",target="a"} 1.0',
        'llm_gpu_power_watts{engine="vllm",gpu="GPU-aaa",target="a"} 301.5',
        'llm_gpu_utilization_ratio{engine="vllm",gpu="GPU-aaa",target="a"} 0.71',
    ])
    assert [line for line in text if "signal_available" in line and "gpu" in line] == [
        'llm_exporter_signal_available{engine="vllm",signal="llm_gpu_energy_joules_total",target="a"} 0.0',
        'llm_exporter_signal_available{engine="vllm",signal="llm_gpu_memory_total_bytes",target="a"} 0.0',
        'llm_exporter_signal_available{engine="vllm",signal="llm_gpu_memory_used_bytes",target="a"} 0.0',
        'llm_exporter_signal_available{engine="vllm",signal="llm_gpu_power_watts",target="a"} 1.0',
        'llm_exporter_signal_available{engine="vllm",signal="llm_gpu_utilization_ratio",target="a"} 1.0',
    ]


def test_a_failing_gpu_source_leaves_the_engine_series_alone(engines: EngineServer) -> None:
    with running_exporter(engine="vllm", targets=[f"a={engines.url('/metrics')}"],
                          gpu={"source": "dcgm", "dcgm_url": engines.url("/no-dcgm-here")}) as url:
        text = series(scrape(url), "a")
    assert [line for line in text if "signal_available" not in line] == sorted(ENGINE_SERIES + [
        'llm_exporter_gpu_source_up{engine="vllm",source="dcgm",target="a"} 0.0'])
    assert all(line.endswith(" 0.0") for line in text if "signal_available" in line and "llm_gpu_" in line)


class FakeNvml:
    """Stands in for pynvml where no NVIDIA driver exists (this machine and CI)."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.devices = [("GPU-aaa", 71, 40 << 30, 80 << 30, 301500), ("GPU-bbb", 64, 20 << 30, 80 << 30, 288250)]

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.fail:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int):  # noqa: N802
        return self.devices[i]

    def nvmlDeviceGetUUID(self, h) -> bytes:  # noqa: N802 - old pynvml returns bytes
        return h[0].encode()

    def nvmlDeviceGetUtilizationRates(self, h):  # noqa: N802
        return SimpleNamespace(gpu=h[1], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):  # noqa: N802
        return SimpleNamespace(used=h[2], total=h[3], free=h[3] - h[2])

    def nvmlDeviceGetPowerUsage(self, h) -> int:  # noqa: N802 - milliwatts
        return h[4]


def test_nvml_reader_maps_devices_to_unified_series() -> None:
    result = NvmlReader(devices=["GPU-bbb"], nvml=FakeNvml()).read()
    assert result.series == {
        M.GPU_UTILIZATION_RATIO: {("GPU-bbb",): 0.64},
        M.GPU_MEMORY_USED_BYTES: {("GPU-bbb",): float(20 << 30)},
        M.GPU_MEMORY_TOTAL_BYTES: {("GPU-bbb",): float(80 << 30)},
        M.GPU_POWER_WATTS: {("GPU-bbb",): 288.25},
    }
    assert result.available == {M.GPU_UTILIZATION_RATIO: True, M.GPU_MEMORY_USED_BYTES: True,
                                M.GPU_MEMORY_TOTAL_BYTES: True, M.GPU_POWER_WATTS: True}


def test_nvml_failure_is_reported_not_raised_as_something_else() -> None:
    with pytest.raises(NvmlUnavailable, match="NVMLError: Driver Not Loaded"):
        NvmlReader(nvml=FakeNvml(fail=True)).read()


def test_hourly_cost_from_the_price_table_and_licence(engines: EngineServer) -> None:
    assert HOURS_PER_MONTH == 730
    # 2 x A100-80GB at the listed $2.4984/h = $4.9968, plus the $4,500/month NVIDIA AI Enterprise
    # licence over 730 h = $6.164383..., worked by hand: $11.161183...
    expected = pytest.approx(11.161183561643836, rel=1e-15)  # up to the last bit of float arithmetic
    assert hourly_cost_dollars(2, None, "A100-80GB", 4500) == expected
    assert hourly_cost_dollars(2, 1.10, "A100-80GB", 0) == 2.2  # an explicit price wins
    with running_exporter(engine="vllm", targets=[f"a={engines.url('/metrics')}"],
                          cost={"gpu_type": "A100-80GB", "gpu_count": 2, "licence_monthly_dollars": 4500}) as url:
        text = series(scrape(url), "a")
    (line,) = [line for line in text if "cost" in line]
    name, value = line.rsplit(" ", 1)
    assert (name, float(value)) == ('llm_hourly_cost_dollars{engine="vllm",target="a"}', expected)
