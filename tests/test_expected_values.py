"""Values a person computed from each of the project's own fixtures (tests/fixtures/engines/README.md,
"expected unified values"), asserted on the exporter's output. The golden files are regenerated
from the code; these numbers are not, so a golden can never be regenerated into a wrong truth."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infersight.exporter.schema import Engine, M
from tests.conftest import OWN_FIXTURES
from tests.test_golden import normalized_exposition

pytestmark = pytest.mark.unit

RUNNING, WAITING, KV = M.REQUESTS_RUNNING.name, M.REQUESTS_WAITING.name, M.KV_CACHE_USAGE_RATIO.name
REQUESTS, PROMPT = M.REQUESTS.name, M.PROMPT_TOKENS.name
PREFIX_QUERIES, PREEMPTIONS = M.PREFIX_CACHE_QUERIES.name, M.PREEMPTIONS.name
TTFT, ITL = M.TIME_TO_FIRST_TOKEN.name, M.INTER_TOKEN_LATENCY.name
E2E, QUEUE = M.REQUEST_DURATION.name, M.REQUEST_QUEUE.name
TPOT, PREFILL = M.TIME_PER_OUTPUT_TOKEN.name, M.REQUEST_PREFILL.name
BY_REASON, AWAKE, CACHED = M.REQUESTS_WAITING_BY_REASON.name, M.ENGINE_AWAKE_RATIO.name, M.PROMPT_TOKENS_CACHED.name
ADMISSION, DRAFTS = M.ADMISSION_REJECTIONS.name, M.SPEC_DECODE_DRAFTS.name
DRAFT_TOKENS, ACCEPTED = M.SPEC_DECODE_DRAFT_TOKENS.name, M.SPEC_DECODE_ACCEPTED_TOKENS.name

# fixture, engine, [(series name, labels that pick one series, value computed by hand from the payload)]
EXPECTED: list[tuple[str, Engine, list[tuple[str, dict[str, str], float]]]] = [
    ("vllm-0.33.0.metrics.txt", Engine.VLLM, [
        (RUNNING, {}, 26), (WAITING, {}, 8), (KV, {}, 0.5),  # two DP ranks: 0.42 and 0.58 averaged
        (REQUESTS, {"outcome": "success"}, 111), (REQUESTS, {"outcome": "aborted"}, 6),
        (REQUESTS, {"outcome": "error"}, 3),  # 1 engine error + 2 HTTP 5xx from the API server
        (REQUESTS, {"outcome": "rejected"}, 4),  # the API server's 4xx
        (TTFT + "_count", {}, 120),
        (BY_REASON, {"reason": "capacity"}, 5), (BY_REASON, {"reason": "deferred"}, 3),  # (3-1)+(5-2), 1+2
        (AWAKE, {}, 1), (CACHED, {}, 36864),  # 12288 per 40 requests, 3 x 40
        (ADMISSION, {}, 5), (PREFILL + "_count", {}, 120)]),  # 4 queued-requests + 1 queued-tokens limit
    ("vllm-0.33.0-tgis-adapter.metrics.txt", Engine.VLLM, [
        (RUNNING, {"model": "ibm-granite/granite-3.1-8b-instruct"}, 9), (WAITING, {}, 2), (KV, {}, 0.37),
        (REQUESTS, {"outcome": "success"}, 37), (REQUESTS, {"outcome": "error"}, 1)]),
    ("vllm-0.33.0-kserve-spec-decode.metrics.txt", Engine.VLLM, [
        (AWAKE, {}, 0.5), (KV, {}, 0.305),  # rank 1 asleep with an empty cache: (0.61 + 0) / 2
        (DRAFTS, {}, 6000), (DRAFT_TOKENS, {}, 18000), (ACCEPTED, {}, 12600),  # 3000, 9000, 6300 per rank
        (CACHED, {}, 24576), (ADMISSION, {}, 5), (BY_REASON, {"reason": "capacity"}, 4)]),
    ("vllm-0.32.0-real.metrics.txt", Engine.VLLM, [
        (REQUESTS, {"outcome": "success"}, 10), (REQUESTS, {"outcome": "rejected"}, 1),  # the over-long prompt
        (REQUESTS, {"outcome": "error"}, 0), (CACHED, {}, 256), (PREFILL + "_count", {}, 10)]),
    ("vllm-0.10.2.metrics.txt", Engine.VLLM, [
        (KV, {}, 0.31), (PREFIX_QUERIES, {}, 48000),  # old and new names side by side: read once
        (ITL + "_count", {}, 200)]),
    ("vllm-0.6.6-ray-serve.metrics.txt", Engine.VLLM, [
        (RUNNING, {}, 20), (KV, {}, 0.44), (QUEUE + "_count", {}, 80)]),
    ("vllm-underscored.metrics.txt", Engine.VLLM, [(KV, {}, 0.27), (RUNNING, {}, 5)]),
    ("nim-1.x-vllm-names.metrics.txt", Engine.NIM, [
        (RUNNING, {}, 22), (KV, {}, 0.61), (REQUESTS, {"outcome": "success"}, 111),
        (REQUESTS, {"outcome": "error"}, 3)]),
    ("triton-trtllm-2025.metrics.txt", Engine.TRITON, [
        (REQUESTS, {"model": "ensemble", "outcome": "rejected"}, 2),  # reason REJECTED
        (REQUESTS, {"model": "ensemble", "outcome": "error"}, 1),  # reason BACKEND
        (RUNNING, {"model": "tensorrt_llm"}, 23), (WAITING, {"model": "tensorrt_llm"}, 9),  # 2 core + 7 TRT-LLM
        (KV, {"model": "tensorrt_llm"}, 0.5398300994), (PROMPT, {"model": "tensorrt_llm"}, 144000),
        (TTFT + "_count", {"model": "ensemble"}, 120), (TTFT + "_sum", {"model": "ensemble"}, 25.6),  # ms -> s
        (E2E + "_sum", {"model": "ensemble"}, 360)]),  # µs counter -> s
    ("triton-trtllm-2024.metrics.txt", Engine.TRITON, [
        (KV, {"model": "tensorrt_llm"}, 0.25),  # used/max = 1024/4096
        (WAITING, {"model": "tensorrt_llm"}, 3), (REQUESTS, {"model": "ensemble", "outcome": "error"}, 1)]),
    ("triton-vllm-backend.metrics.txt", Engine.TRITON, [
        (TTFT + "_count", {}, 40), (ITL + "_count", {}, 200), (REQUESTS, {"outcome": "aborted"}, 1)]),
    ("sglang-0.5.23.metrics.txt", Engine.SGLANG, [
        (RUNNING, {}, 18), (WAITING, {}, 6), (KV, {}, 0.73), (REQUESTS, {"outcome": "success"}, 37),
        (REQUESTS, {"outcome": "aborted"}, 3), (PREEMPTIONS, {}, 4), (CACHED, {}, 12000)]),  # device + host
    ("sglang-0.4.4.metrics.txt", Engine.SGLANG, [(ITL + "_count", {}, 200)]),  # the old name, per gap
    ("sglang-0.4.6.metrics.txt", Engine.SGLANG, [(ITL + "_count", {}, 200), (TPOT + "_count", {}, 40)]),
    ("sglang-main-2026.metrics.txt", Engine.SGLANG, [(CACHED, {}, 12000), (PREEMPTIONS, {}, 4)]),
    ("tgi-3.3.metrics.txt", Engine.TGI, [
        (RUNNING, {}, 16), (WAITING, {}, 4), (REQUESTS, {"outcome": "success"}, 40),
        (REQUESTS, {"outcome": "error"}, 2), (REQUESTS, {"outcome": "rejected"}, 3),  # 2 overloaded, 3 validation
        (PROMPT, {}, 48000)]),
    ("trtllm-serve-2026.metrics.txt", Engine.TRTLLM, [
        (RUNNING, {}, 17), (WAITING, {}, 3), (KV, {}, 0.46), (REQUESTS, {"outcome": "success"}, 37),
        (REQUESTS, {"outcome": "aborted"}, 3), (DRAFT_TOKENS, {}, 4500), (ACCEPTED, {}, 2700),
        (PREFILL + "_count", {}, 40), (TPOT + "_count", {}, 40)]),
    ("trtllm-serve-2025.metrics.txt", Engine.TRTLLM, [
        (REQUESTS, {"outcome": "success"}, 37), (TTFT + "_count", {}, 40), (QUEUE + "_count", {}, 40)]),
]


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def one(found: list[tuple[str, dict[str, str], float]], name: str, labels: dict[str, str]) -> float:
    matches = [value for n, have, value in found if n == name and labels.items() <= have.items()
               and (name.endswith(("_count", "_sum")) or "le" not in have)]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


@pytest.mark.parametrize(("fixture", "engine", "expected"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_own_fixture_gives_the_values_computed_by_hand(fixture: str, engine: Engine, expected) -> None:
    model = {"model": "bigscience/bloom-560m"} if engine is Engine.TGI else {}
    found = samples(normalized_exposition((OWN_FIXTURES / fixture).read_text(encoding="utf-8"), engine, **model))
    got = [(name, labels, one(found, name, labels)) for name, labels, _ in expected]
    assert got == [(name, labels, pytest.approx(value, rel=1e-12)) for name, labels, value in expected]
