#!/usr/bin/env bash
# Run the stack on its embedded default, no GPU needed: three stand-in engines (vLLM 0.33,
# Triton + TensorRT-LLM, NIM) replaying the project's own fixtures, one infersight exporter in
# front of them, and a Prometheus scraping the exporter. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

pids=()
workdir=$(mktemp -d)
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=.venv/bin/infersight
fixtures=tests/fixtures/engines
$bin replay "$fixtures/vllm-0.33.0.metrics.txt" --listen 127.0.0.1:18000 & pids+=($!)
$bin replay "$fixtures/triton-trtllm-2025.metrics.txt" --listen 127.0.0.1:18002 & pids+=($!)
$bin replay "$fixtures/nim-1.x-vllm-names.metrics.txt" --listen 127.0.0.1:18003 --path /v1/metrics & pids+=($!)
$bin exporter --config examples/exporter.yaml & pids+=($!)

cat >"$workdir/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: infersight
    static_configs: [{targets: ["127.0.0.1:9400"]}]
YAML
prometheus --config.file="$workdir/prometheus.yml" --storage.tsdb.path="$workdir/data" \
  --web.listen-address=127.0.0.1:9090 --log.level=warn & pids+=($!)

for url in http://127.0.0.1:9400/-/ready http://127.0.0.1:9090/-/ready; do
  until curl -sf "$url" >/dev/null 2>&1; do sleep 0.2; done
done
cat <<TXT

infersight is running (Ctrl-C stops it):
  exporter    http://127.0.0.1:9400/metrics   (normalized metrics of all three engines)
  prometheus  http://127.0.0.1:9090           (try: llm_kv_cache_usage_ratio, llm_exporter_target_up)
TXT
wait
