"""The simulated engine's HTTP face: its /metrics, the OpenAI-compatible API, health, and a control
endpoint for faults. Starlette on uvicorn, one process per engine, bound to 127.0.0.1 by default.

Paths: ``/metrics`` (``/v1/metrics`` for NIM; Triton serves both on the one port here, where the
real server splits 8000/8002), ``/dcgm/metrics`` (dcgm-exporter's format for the simulated GPUs),
``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, ``/health``, ``/v1/health/ready``,
``/v2/health/ready``, ``GET|POST|DELETE /control/faults``, ``POST /control/restart``, ``GET /control/state``,
``GET /control/truth?window=S`` (exact figures from the raw observations, for cross-checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from infersight.simulator.engine import (
    FAULT_KINDS,
    Fault,
    SimulatedEngine,
    TooManyFaults,
    check_duration,
    check_start,
    check_value,
)
from infersight.simulator.model import FinishReason, Request

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WORDS = ("the", "engine", "streams", "tokens", "at", "the", "pace", "its", "queueing", "model", "sets", "and",
         "every", "figure", "comes", "from", "that", "one", "model")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A tokenizer stand-in: words and punctuation marks (about 1.3 per English word in real BPE;
    clients that need exact counts read ``usage``, which is this number)."""
    return max(1, len(_TOKEN.findall(text)))


def openai_error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status)


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, kind: str = "BadRequestError"):
        super().__init__(message)
        self.message, self.param, self.status, self.kind = message, param, status, kind


MAX_CONTROL_BODY_BYTES = 64 * 1024


class FaultBody(BaseModel):
    """``POST /control/faults``: JSON numbers only (no strings, no booleans), finite and in range."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    delay_seconds: float = 0.0
    duration_seconds: float | None = None
    value: float | None = None

    @field_validator("delay_seconds")
    @classmethod
    def _delay(cls, seconds: float) -> float:
        return check_start(seconds)

    @field_validator("duration_seconds")
    @classmethod
    def _duration(cls, seconds: float | None) -> float | None:
        return check_duration(seconds)

    @field_validator("value")
    @classmethod
    def _value(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        return check_value(kind, value) if kind is not None else value


class TruthQuery(BaseModel):
    """``GET /control/truth``: the last ``window`` seconds, or Unix times ``start`` [.. ``end``]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: float = 60.0
    start: float | None = None
    end: float | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, seconds: float) -> float:
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError("must be a finite number > 0 (seconds)")
        return seconds

    @field_validator("start", "end")
    @classmethod
    def _time(cls, at: float | None) -> float | None:
        if at is not None and not math.isfinite(at):
            raise ValueError("must be a finite number (Unix time)")
        return at

    @model_validator(mode="after")
    def _ordered(self) -> TruthQuery:
        if self.end is not None and self.start is None:
            raise ValueError("end: needs start")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


def control_error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def invalid(error: ValidationError) -> JSONResponse:
    """400 naming the field (the first problem; ``problems`` lists them all)."""
    problems = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or None
        message = e["msg"].removeprefix("Value error, ")
        if field is None and e["type"] == "value_error" and ": " in message:  # a check across fields names its field
            field, message = message.split(": ", 1)
        problems.append({"field": field, "message": message})
    first = problems[0]
    text = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return JSONResponse({"error": text, "field": first["field"], "problems": problems}, status_code=400)


class StampArrival:
    """ASGI middleware: stamp a request when its head reaches the server, before its body is read
    and parsed. Real engines start the clock on receipt too (vLLM's ``arrival_time``), so TTFT and
    e2e hold the server's own request handling, as the client's figures do."""

    def __init__(self, app: Starlette):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrival"] = time.monotonic()
        await self.app(scope, receive, send)


def build_app(engine: SimulatedEngine) -> Starlette:
    model_name = engine.profile.model_name
    max_len = engine.profile.max_model_len

    def unavailable() -> Response | None:
        if engine.failure is not None:
            return PlainTextResponse(f"engine loop stopped ({engine.failure})\n", status_code=503)
        if engine.down:
            return PlainTextResponse("engine unavailable (simulated outage)\n", status_code=503)
        return None

    async def metrics(_: HttpRequest) -> Response:
        if (down := unavailable()) is not None:
            return down
        slow = engine.active("slow_metrics")
        if slow is not None:
            await asyncio.sleep(slow.value or 0.0)
        return Response(engine.metrics_text(), media_type=CONTENT_TYPE)

    async def dcgm(_: HttpRequest) -> Response:
        return Response(engine.dcgm_text(), media_type=CONTENT_TYPE)

    async def health(_: HttpRequest) -> Response:
        return unavailable() or PlainTextResponse("")

    async def models(_: HttpRequest) -> Response:
        if (down := unavailable()) is not None:
            return down
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "created": int(engine.born), "owned_by": engine.engine,
             "root": model_name, "parent": None, "max_model_len": max_len}]})

    def parse(body: dict[str, Any], chat: bool) -> tuple[int, int | None, bool, bool, bool]:
        """(prompt tokens, max_tokens, stream, include usage, ignore_eos) or BadRequest."""
        if body.get("model") not in (None, model_name):
            raise BadRequest(f"The model `{body.get('model')}` does not exist.", "model", 404, "NotFoundError")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("'messages' must be a non-empty list", "messages")
            texts = []
            for m in messages:
                content = m.get("content") if isinstance(m, dict) else None
                if isinstance(content, list):  # content parts
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                if not isinstance(content, str):
                    raise BadRequest("each message needs a string 'content'", "messages")
                texts.append(content)
            prompt = count_tokens(" ".join(texts)) + 4 * len(texts)  # chat template tokens per message
        else:
            raw = body.get("prompt")
            if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
                prompt = len(raw)
            elif isinstance(raw, str) and raw:
                prompt = count_tokens(raw)
            else:
                raise BadRequest("'prompt' must be a non-empty string or a list of token ids", "prompt")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise BadRequest("max_tokens must be an integer >= 1", "max_tokens")
        if prompt + (max_tokens or 1) > max_len:
            raise BadRequest(f"This model's maximum context length is {max_len} tokens. However, you requested "
                             f"{prompt + (max_tokens or 1)} tokens ({prompt} in the messages, {max_tokens or 1} in "
                             f"the completion).", "max_tokens")
        if body.get("n", 1) != 1:
            raise BadRequest("only n=1 is supported", "n")
        stream = bool(body.get("stream", False))
        options = body.get("stream_options") or {}
        if options and not stream:
            raise BadRequest("stream_options is only allowed when stream is true", "stream_options")
        include_usage = bool(options.get("include_usage", False)) if isinstance(options, dict) else False
        return prompt, max_tokens, stream, include_usage, bool(body.get("ignore_eos", False))

    async def complete(http: HttpRequest, chat: bool) -> Response:
        if engine.failure is not None:
            return openai_error(503, f"engine loop stopped ({engine.failure})", "ServiceUnavailableError")
        if engine.down:
            return openai_error(503, "engine unavailable (simulated outage)", "ServiceUnavailableError")
        try:
            body = await http.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return openai_error(400, "request body is not valid JSON", "BadRequestError")
        if not isinstance(body, dict):
            return openai_error(400, "request body must be a JSON object", "BadRequestError")
        try:
            prompt, max_tokens, stream, include_usage, ignore_eos = parse(body, chat)
        except BadRequest as e:
            return openai_error(e.status, e.message, e.kind, e.param)
        request, queue = engine.submit(prompt, max_tokens, ignore_eos, arrival=http.state.arrival)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        if stream:
            return StreamingResponse(_stream(engine, request, queue, rid, chat, include_usage),
                                     media_type="text/event-stream")
        try:
            while True:
                _, done = await queue.get()
                if done:
                    break
        finally:
            engine.release(request)
        if request.finish_reason in (FinishReason.ERROR, FinishReason.ABORT):
            return openai_error(500, f"the engine failed the request ({request.finish_reason})", "InternalServerError")
        text = _text(0, request.output_tokens)
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": request.finish_reason.value
                                  if request.finish_reason else None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return JSONResponse({"id": rid, "object": "chat.completion" if chat else "text_completion",
                             "created": int(time.time()), "model": model_name, "choices": [choice],
                             "usage": _usage(request)})

    async def chat_completions(http: HttpRequest) -> Response:
        return await complete(http, chat=True)

    async def completions(http: HttpRequest) -> Response:
        return await complete(http, chat=False)

    async def get_faults(_: HttpRequest) -> Response:
        return JSONResponse(engine.snapshot())

    async def post_fault(http: HttpRequest) -> Response:
        """Schedule a fault. The answer is the fault and how many are kept, never the whole list:
        posting n faults costs O(n) (GET /control/faults lists them)."""
        body = bytearray()
        async for chunk in http.stream():
            body += chunk
            if len(body) > MAX_CONTROL_BODY_BYTES:
                return control_error(413, f"the body is larger than {MAX_CONTROL_BODY_BYTES:,} bytes", None)
        try:
            spec = FaultBody.model_validate_json(bytes(body))
        except ValidationError as e:
            return invalid(e)
        try:
            fault = Fault(spec.kind, engine.elapsed + spec.delay_seconds, spec.duration_seconds, spec.value)
        except ValueError as e:  # checked above; a start beyond what a float holds would end here
            return control_error(400, str(e), None)
        try:
            engine.add_fault(fault)
        except TooManyFaults as e:
            return control_error(429, str(e), None)
        return JSONResponse({"fault": fault.as_dict(), "faults_kept": len(engine.schedule)}, status_code=201)

    async def delete_faults(_: HttpRequest) -> Response:
        engine.clear_faults()
        return JSONResponse(engine.snapshot())

    async def truth(http: HttpRequest) -> Response:
        """Ground truth over the last ``window`` seconds (or wall-clock ``start``..``end``): exact, unbucketed."""
        try:
            query = TruthQuery.model_validate(dict(http.query_params))
        except ValidationError as e:
            return invalid(e)
        now_wall, now_model = time.time(), time.monotonic()
        if query.start is not None:
            start = query.start - now_wall + now_model
            end = (now_wall if query.end is None else query.end) - now_wall + now_model
        else:
            end = now_model
            start = end - query.window
        return JSONResponse(engine.recorder.ground_truth(start, end))

    async def restart(_: HttpRequest) -> Response:
        engine.restart()
        return JSONResponse(engine.snapshot())

    metrics_paths = {engine.format.path, "/metrics"}
    routes = [Route(path, metrics) for path in sorted(metrics_paths)] + [
        Route("/dcgm/metrics", dcgm),
        Route("/health", health), Route("/v1/health/ready", health), Route("/v1/health/live", health),
        Route("/v2/health/ready", health),
        Route("/v1/models", models),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/control/faults", get_faults, methods=["GET"]),
        Route("/control/state", get_faults, methods=["GET"]),
        Route("/control/faults", post_fault, methods=["POST"]),
        Route("/control/faults", delete_faults, methods=["DELETE"]),
        Route("/control/restart", restart, methods=["POST"]),
        Route("/control/truth", truth, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(StampArrival)])


def _text(start: int, count: int) -> str:
    return "".join(" " + WORDS[(start + i) % len(WORDS)] for i in range(count))


def _usage(request: Request) -> dict[str, int]:
    return {"prompt_tokens": request.prompt_tokens, "completion_tokens": request.output_tokens,
            "total_tokens": request.prompt_tokens + request.output_tokens}


async def _stream(engine: SimulatedEngine, request: Request, queue: asyncio.Queue[tuple[int, bool]], rid: str,
                  chat: bool, include_usage: bool) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, one chunk per token at the model's times."""
    created = int(time.time())
    name = engine.profile.model_name
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        payload: dict[str, Any] = {"id": rid, "object": kind, "created": created, "model": name, "choices": choices}
        if include_usage:
            payload["usage"] = usage
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def choice(text: str, finish: str | None, first: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {"content": text}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    sent = 0
    try:
        while True:
            tokens, finished = await queue.get()
            req = request
            new = tokens - sent
            if new > 0:
                last_chunk = finished and req.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
                yield event([choice(_text(sent, new), req.finish_reason.value if last_chunk and req.finish_reason
                                    else None, first=sent == 0)])
                sent = tokens
            if finished:
                if req.finish_reason in (FinishReason.ERROR, FinishReason.ABORT):
                    error = {"error": {"message": f"the engine failed the request ({req.finish_reason})",
                                       "type": "InternalServerError", "param": None, "code": 500}}
                    yield b"data: " + json.dumps(error, separators=(",", ":")).encode() + b"\n\n"
                elif new == 0:
                    yield event([choice("", req.finish_reason.value if req.finish_reason else None)])
                if include_usage:
                    yield event([], _usage(req))
                yield b"data: [DONE]\n\n"
                return
    finally:
        with contextlib.suppress(Exception):
            engine.release(request)
