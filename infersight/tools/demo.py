"""``infersight demo``: the whole stack on one machine, no GPU.

Three simulated engines (vLLM 0.33, Triton + vLLM backend, NIM 1.x) calibrated to the seed
comparison (Llama 3.1 70B on 2x A100 80GB), a sidecar exporter beside each, the web UI, and, when the Debian
binaries are installed, Prometheus with the project's rules and Alertmanager whose pager and ticket
receivers are a local webhook that records what it gets. Without them the demo still runs: it keeps
a short in-memory history of the exporters' scrapes and prints the comparison from it.
Every process is a child of this one; Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from infersight import alerts
from infersight.compare import History, embedded_rows, to_table
from infersight.exporter.schema import M

HOST = "127.0.0.1"
A100_DOLLARS_PER_HOUR = 3.25  # the seed's figure: 2 x $3.25 x 730 h = $4,745 a month
NIM_LICENCE_MONTHLY_DOLLARS = 4500.0


@dataclass(frozen=True)
class DemoEngine:
    name: str
    engine: str
    version: str
    profile: str
    port: int
    exporter_port: int
    gpu_source: str  # engine (Triton's nv_gpu_*) or dcgm (the simulator's dcgm-exporter endpoint)
    licence: float = 0.0

    def metrics_path(self) -> str:
        return "/v1/metrics" if self.engine == "nim" else "/metrics"


def demo_engines(base_port: int = 18000) -> list[DemoEngine]:
    return [
        DemoEngine("vllm", "vllm", "0.33", "seed-vllm", base_port, base_port + 1400, "dcgm"),
        DemoEngine("triton", "triton", "vllm", "seed-triton", base_port + 1, base_port + 1401, "engine"),
        DemoEngine("nim", "nim", "1.x", "seed-nim", base_port + 2, base_port + 1402, "dcgm",
                   NIM_LICENCE_MONTHLY_DOLLARS),
    ]


def exporter_config(e: DemoEngine) -> dict[str, object]:
    target: dict[str, object] = {"name": e.name, "url": f"http://{HOST}:{e.port}{e.metrics_path()}",
                                 "engine": e.engine}
    if e.gpu_source == "dcgm":
        target["gpu"] = {"source": "dcgm", "dcgm_url": f"http://{HOST}:{e.port}/dcgm/metrics"}
    else:
        target["gpu"] = {"source": "engine"}
    cost: dict[str, object] = {"gpu_count": 2, "gpu_hourly_dollars": A100_DOLLARS_PER_HOUR}
    if e.licence:
        cost["licence_monthly_dollars"] = e.licence
    target["cost"] = cost
    return {"listen": f"{HOST}:{e.exporter_port}", "targets": [target]}


def prometheus_config(engines: list[DemoEngine], alertmanager_port: int | None,
                      rule_files: list[str]) -> dict[str, object]:
    config: dict[str, object] = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": rule_files,
        "scrape_configs": [{"job_name": "infersight", "static_configs": [
            {"targets": [f"{HOST}:{e.exporter_port}" for e in engines]}]}],
    }
    if alertmanager_port:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"{HOST}:{alertmanager_port}"]}]}]}
    return config


class PageRecorder(BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: keeps every notification, by receiver path."""

    received: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's spelling)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"raw": body.decode(errors="replace")}
        PageRecorder.received.append({"path": self.path, "payload": payload})
        for alert in payload.get("alerts", []) if isinstance(payload, dict) else []:
            labels = alert.get("labels", {})
            print(f"[{self.path.strip('/')}] {alert.get('status')}: {labels.get('alertname')} "
                  f"{ {k: v for k, v in labels.items() if k != 'alertname'} }", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now. SO_REUSEADDR as uvicorn sets it: connections
    of a killed server left in TIME_WAIT do not hold the port, a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_ready(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    """Whether ``check()`` holds within ``timeout`` seconds (asked every 0.2 s; errors are no)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


def _query(api: str, query: str) -> list[dict[str, object]]:
    return httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()["data"]["result"]


def _rule_count(api: str) -> int:
    return sum(len(g["rules"]) for g in httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"])


class Demo:
    def __init__(self, base_port: int = 18000, prometheus: bool = True, print_every: float = 30.0,
                 window: float = 60.0, ui: bool = True, first_print: float = 45.0):
        self.want_ui = ui
        self.engines = demo_engines(base_port)
        self.prometheus_port = base_port + 1090
        self.alertmanager_port = base_port + 1093
        self.webhook_port = base_port + 1095
        self.ui_port = base_port + 1501
        self.want_prometheus = prometheus
        self.print_every = print_every
        # The first comparison waits for this many seconds of scrapes: over 30 s, the tokens of
        # the few prefills in it move a rate by up to 8%; over 45 s, by up to 6%.
        self.first_print = first_print
        self.window = window
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workdir: Path | None = None  # made by start(): a Demo not started writes nothing
        self.history = History([f"http://{HOST}:{e.exporter_port}/metrics" for e in self.engines])
        self.webhook: ThreadingHTTPServer | None = None

    def ports(self) -> list[tuple[int, str]]:
        ports = [(e.port, f"{e.name} simulator") for e in self.engines]
        ports += [(e.exporter_port, f"{e.name} exporter") for e in self.engines]
        if self.want_ui:
            ports.append((self.ui_port, "web UI"))
        if self.prometheus_binaries():
            ports += [(self.prometheus_port, "prometheus"), (self.alertmanager_port, "alertmanager"),
                      (self.webhook_port, "pager webhook")]
        return ports

    def prometheus_binaries(self) -> bool:
        return self.want_prometheus and all(shutil.which(b) for b in ("prometheus", "prometheus-alertmanager"))

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{log_name}.log", "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.processes.append(process)
        return process

    def start(self) -> None:
        taken = [f"{port} ({what})" for port, what in self.ports() if not port_free(port)]
        if taken:
            raise RuntimeError(f"ports already in use: {', '.join(taken)}. Stop what holds them (another "
                               f"demo?) or pick other ports with --base-port.")
        self.workdir = Path(tempfile.mkdtemp(prefix="infersight-demo-"))
        cli = [sys.executable, "-m", "infersight"]
        for e in self.engines:
            self._spawn([*cli, "simulate", "--engine", e.engine, "--version", e.version, "--profile", e.profile,
                         "--host", HOST, "--port", str(e.port)], f"simulate-{e.name}")
            config = self.workdir / f"exporter-{e.name}.yaml"
            config.write_text(yaml.safe_dump(exporter_config(e), sort_keys=False))
            self._spawn([*cli, "exporter", "--config", str(config)], f"exporter-{e.name}")
        # Prometheus only once every exporter answers: its first evaluations would otherwise
        # see the exporters absent (LLMExporterAbsent, a page, pending with nothing wrong).
        for e in self.engines:
            for url in (f"http://{HOST}:{e.port}/health", f"http://{HOST}:{e.exporter_port}/-/ready"):
                if not wait_ready(url):
                    raise RuntimeError(f"{url} did not become ready; logs in {self.workdir}")
        if self.prometheus_binaries():
            self._start_prometheus()
        if self.want_ui:
            self._start_ui()

    def _start_ui(self) -> None:
        import os

        env = {"INFERSIGHT_UI_EXPORTERS": ",".join(self.history.urls), "INFERSIGHT_UI_REFRESH_SECONDS": "5",
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        if self.prometheus_binaries():
            env["INFERSIGHT_UI_PROMETHEUS_URL"] = f"http://{HOST}:{self.prometheus_port}"
            env["INFERSIGHT_UI_ALERTMANAGER_URL"] = f"http://{HOST}:{self.alertmanager_port}"
        with open(self.workdir / "ui.log", "wb") as log:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "infersight", "ui", "--address", HOST, "--port", str(self.ui_port)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env={**os.environ, **env}))
        if not wait_ready(f"http://{HOST}:{self.ui_port}/_stcore/health", timeout=60):
            raise RuntimeError(f"the web UI did not start; logs in {self.workdir}")

    def _start_prometheus(self) -> None:
        PageRecorder.received = []
        self.webhook = ThreadingHTTPServer((HOST, self.webhook_port), PageRecorder)
        threading.Thread(target=self.webhook.serve_forever, daemon=True).start()
        am_config = yaml.safe_load(alerts.packaged(alerts.ALERTMANAGER_CONFIG).read_text(encoding="utf-8"))
        for receiver in am_config.get("receivers", []):
            for hook in receiver.get("webhook_configs", []):
                path = hook["url"].split("/", 3)[-1]
                hook["url"] = f"http://{HOST}:{self.webhook_port}/{path}"
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(am_config, sort_keys=False))
        self._spawn(["prometheus-alertmanager", f"--config.file={self.workdir / 'alertmanager.yml'}",
                     f"--storage.path={self.workdir / 'am'}", f"--web.listen-address={HOST}:{self.alertmanager_port}",
                     "--cluster.listen-address=", "--log.level=warn"], "alertmanager")
        rule_files = []
        for name in (alerts.GENERATED_RULES, alerts.ALERT_RULES):  # copied out of the package: Prometheus reads files
            copy = self.workdir / "rules" / Path(name).name
            copy.parent.mkdir(exist_ok=True)
            copy.write_text(alerts.packaged(name).read_text(encoding="utf-8"), encoding="utf-8")
            rule_files.append(str(copy))
        # Prometheus starts without the rules and gets them once it has scraped every exporter:
        # evaluated before its first scrape, `absent(llm_exporter_build_info)` is true and
        # LLMExporterAbsent (a page) goes pending while nothing is wrong.
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.engines, self.alertmanager_port, []), sort_keys=False))
        prometheus = self._spawn(["prometheus", f"--config.file={config}",
                                  f"--storage.tsdb.path={self.workdir / 'prometheus'}",
                                  f"--web.listen-address={HOST}:{self.prometheus_port}", "--log.level=warn"],
                                 "prometheus")
        for url in (f"http://{HOST}:{self.prometheus_port}/-/ready", f"http://{HOST}:{self.alertmanager_port}/-/ready"):
            if not wait_ready(url):
                raise RuntimeError(f"{url} did not become ready; logs in {self.workdir}")
        api = f"http://{HOST}:{self.prometheus_port}/api/v1"
        if not wait_for(lambda: len(_query(api, M.EXPORTER_BUILD_INFO.name)) >= len(self.engines), 30):
            raise RuntimeError(f"Prometheus did not scrape every exporter within 30 s; logs in {self.workdir}")
        config.write_text(yaml.safe_dump(prometheus_config(self.engines, self.alertmanager_port, rule_files),
                                         sort_keys=False))
        prometheus.send_signal(signal.SIGHUP)  # reload: the same scrapes, now with the rules
        if not wait_for(lambda: _rule_count(api) > 0, 30):
            raise RuntimeError(f"Prometheus did not load the rules within 30 s; logs in {self.workdir}")

    def describe(self) -> str:
        lines = ["infersight demo is running (Ctrl-C stops everything):"]
        for e in self.engines:
            lines.append(f"  {e.name:<7} engine   http://{HOST}:{e.port}{e.metrics_path()}  (OpenAI API at "
                         f"http://{HOST}:{e.port}/v1, faults: POST /control/faults)")
            lines.append(f"  {e.name:<7} exporter http://{HOST}:{e.exporter_port}/metrics")
        if self.want_ui:
            lines.append(f"  web UI           http://{HOST}:{self.ui_port}  (Compare, Live, Cost, SLOs)")
        if self.prometheus_binaries():
            lines.append(f"  prometheus       http://{HOST}:{self.prometheus_port}  (rules from alerts/)")
            lines.append(f"  alertmanager     http://{HOST}:{self.alertmanager_port}  (pages and tickets are printed "
                         f"here as they arrive)")
        else:
            lines.append("  prometheus: not installed (bash scripts/setup.sh installs it); using the embedded "
                         "scrape history")
        lines.append(f"  compare:  infersight compare --exporter http://{HOST}:{self.engines[0].exporter_port}/metrics "
                     f"... --window 1m" + (f"   or --prometheus http://{HOST}:{self.prometheus_port}"
                                           if self.prometheus_binaries() else ""))
        lines.append(f"  logs:     {self.workdir}")
        return "\n".join(lines)

    def loop(self, duration: float | None = None) -> None:
        """Scrape the exporters every 5 s into the embedded history; print the comparison now and then."""
        started = time.monotonic()
        last_print = started + self.first_print - self.print_every
        while duration is None or time.monotonic() - started < duration:
            self.history.scrape()
            if time.monotonic() - last_print >= self.print_every:
                last_print = time.monotonic()
                window = self.history.window(self.window)
                span = window[-1].time - window[0].time if window else 0.0
                # The engines start in their steady state (their profiles' warm start), so even
                # the first comparison, over less than the window, is the seed's figures.
                print(f"\n--- comparison over the last {span:.0f} s (embedded scrapes) ---\n"
                      + to_table(embedded_rows(window)), flush=True)
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[3] if len(p.args) > 3 else p.args[0]} exited ({p.returncode}); "
                                       f"logs in {self.workdir}")
            time.sleep(5)

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.webhook is not None:
            self.webhook.shutdown()
            self.webhook.server_close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def run(base_port: int, prometheus: bool, duration: float | None, ui: bool = True) -> int:
    demo = Demo(base_port, prometheus, ui=ui)
    try:
        demo.start()
        print(demo.describe(), flush=True)
        demo.loop(duration)
    except RuntimeError as e:
        print(f"infersight demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0
