"""The simulated engines' OpenAI-compatible API, served by a real `infersight simulate` process:
what a client sends and gets back, and that every request shows up in the engine's /metrics."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infersight.simulator.run import bind
from infersight.simulator.server import count_tokens
from tests.processes import free_port, infersight_command, running

MODEL = "Qwen/Qwen3-0.6B"  # the "small" profile's model


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> str:
    port = free_port()
    log = tmp_path_factory.mktemp("simulate") / "simulate.log"
    cmd = [*infersight_command(), "simulate", "--engine", "vllm", "--version", "0.33", "--profile", "small",
           "--no-load", "--port", str(port)]
    with running(cmd, f"http://127.0.0.1:{port}/health", log=log):
        yield f"http://127.0.0.1:{port}"


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model_name", "engine")))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def stream_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_models_lists_the_served_model(engine: str) -> None:
    body = httpx.get(f"{engine}/v1/models", timeout=5).json()
    assert [(m["id"], m["object"], m["max_model_len"]) for m in body["data"]] == [(MODEL, "model", 4096)]


def test_chat_completion_returns_max_tokens_and_counts_them(engine: str) -> None:
    before = samples(engine)
    messages = [{"role": "user", "content": "How many tokens does this prompt hold?"}]
    response = httpx.post(f"{engine}/v1/chat/completions", timeout=30, json={
        "model": MODEL, "messages": messages, "max_tokens": 7, "ignore_eos": True})
    assert response.status_code == 200
    body = response.json()
    prompt_tokens = count_tokens(messages[0]["content"]) + 4  # plus the chat template's tokens per message
    assert body["object"] == "chat.completion"
    assert body["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 7, "total_tokens": prompt_tokens + 7}
    assert [(c["index"], c["finish_reason"], c["message"]["role"]) for c in body["choices"]] == [
        (0, "length", "assistant")]
    assert len(body["choices"][0]["message"]["content"].split()) == 7
    after = samples(engine)
    assert after[("vllm:generation_tokens_total", ())] - before[("vllm:generation_tokens_total", ())] == 7
    assert after[("vllm:prompt_tokens_total", ())] - before[("vllm:prompt_tokens_total", ())] == prompt_tokens
    success = ("vllm:request_success_total", (("finished_reason", "length"),))
    assert after[success] - before[success] == 1


def test_streamed_chat_sends_one_chunk_per_token_then_usage_and_done(engine: str) -> None:
    with httpx.stream("POST", f"{engine}/v1/chat/completions", timeout=30, json={
            "model": MODEL, "messages": [{"role": "user", "content": "stream please"}], "max_tokens": 5,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = stream_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    tokens, usage = chunks[:-1], chunks[-1]
    # Tokens stream as the engine's steps give them: one or more per chunk, five in all.
    assert sum(len(c["choices"][0]["delta"]["content"].split()) for c in tokens) == 5
    assert tokens[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None] * (len(tokens) - 1) + ["length"]
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": count_tokens("stream please") + 4, "completion_tokens": 5,
                              "total_tokens": count_tokens("stream please") + 4 + 5}


def test_completions_take_token_ids_as_the_prompt(engine: str) -> None:
    response = httpx.post(f"{engine}/v1/completions", timeout=30, json={
        "model": MODEL, "prompt": list(range(50)), "max_tokens": 3, "ignore_eos": True})
    body = response.json()
    assert (response.status_code, body["object"], body["usage"]) == (
        200, "text_completion", {"prompt_tokens": 50, "completion_tokens": 3, "total_tokens": 53})
    assert body["choices"][0]["finish_reason"] == "length"


def test_without_ignore_eos_a_request_stops_at_or_before_max_tokens(engine: str) -> None:
    body = httpx.post(f"{engine}/v1/completions", timeout=30, json={
        "model": MODEL, "prompt": "tell me a story", "max_tokens": 400}).json()
    completion = body["usage"]["completion_tokens"]
    assert 1 <= completion <= 400
    assert body["choices"][0]["finish_reason"] == ("length" if completion == 400 else "stop")


@pytest.mark.parametrize(("payload", "status", "kind", "param"), [
    ({"model": MODEL, "messages": []}, 400, "BadRequestError", "messages"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "BadRequestError", "n"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "BadRequestError",
     "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, 400, "BadRequestError",
     "max_tokens"),
    ({"model": "other/model", "messages": [{"role": "user", "content": "hi"}]}, 404, "NotFoundError", "model"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}},
     400, "BadRequestError", "stream_options"),
], ids=["no-messages", "n=2", "max_tokens=0", "over-context", "unknown-model", "stream-options-without-stream"])
def test_bad_requests_get_an_openai_error_body(engine: str, payload: dict, status: int, kind: str, param: str) -> None:
    response = httpx.post(f"{engine}/v1/chat/completions", json=payload, timeout=10)
    error = response.json()["error"]
    assert (response.status_code, error["type"], error["param"], error["code"]) == (status, kind, param, status)
    assert error["message"]


def test_a_body_that_is_not_json_is_a_400(engine: str) -> None:
    response = httpx.post(f"{engine}/v1/completions", content=b"{not json", timeout=10,
                          headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["message"]) == (400, "request body is not valid JSON")


def test_an_error_burst_fails_requests_with_5xx_and_counts_them(engine: str) -> None:
    before = samples(engine)
    httpx.post(f"{engine}/control/faults", timeout=5,
               json={"kind": "error_burst", "value": 1.0, "duration_seconds": 30}).raise_for_status()
    try:
        response = httpx.post(f"{engine}/v1/completions", timeout=30, json={
            "model": MODEL, "prompt": "fail me", "max_tokens": 5, "ignore_eos": True})
        assert (response.status_code, response.json()["error"]["type"]) == (500, "InternalServerError")
        with httpx.stream("POST", f"{engine}/v1/chat/completions", timeout=30, json={
                "model": MODEL, "messages": [{"role": "user", "content": "fail me too"}], "max_tokens": 5,
                "ignore_eos": True, "stream": True}) as stream:
            events = stream_events(stream)
        # A stream that already started cannot change its status: the error comes as an event.
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["type"] == "InternalServerError"
    finally:
        httpx.delete(f"{engine}/control/faults", timeout=5).raise_for_status()
    after = samples(engine)
    failed = ("vllm:request_success_total", (("finished_reason", "error"),))
    assert after.get(failed, 0.0) - before.get(failed, 0.0) == 2


def test_an_outage_answers_503(engine: str) -> None:
    fault = {"kind": "outage", "duration_seconds": 30}
    httpx.post(f"{engine}/control/faults", timeout=5, json=fault).raise_for_status()
    try:
        response = httpx.post(f"{engine}/v1/completions", timeout=10, json={"model": MODEL, "prompt": "hi"})
        assert (response.status_code, response.json()["error"]["type"]) == (503, "ServiceUnavailableError")
        assert httpx.get(f"{engine}/health", timeout=5).status_code == 503
    finally:
        httpx.delete(f"{engine}/control/faults", timeout=5).raise_for_status()
    assert httpx.get(f"{engine}/health", timeout=5).status_code == 200


def test_accepted_connections_disable_nagle() -> None:
    """Without TCP_NODELAY a keep-alive client's first streamed chunk waits for its delayed ACK
    (40 ms on Linux): AIPerf measured every TTFT below 43 ms as 43 ms until this was set."""
    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=bind("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) == 1
