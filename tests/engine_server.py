"""A real HTTP server on 127.0.0.1 that plays an engine's /metrics endpoint, well or badly."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    mode: str = "ok"  # ok, slow, drip, status, redirect_loop, truncated, gzip, gzip_bomb, close
    body: bytes = b""
    status: int = 200
    delay: float = 0.0
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of every request seen


class EngineServer:
    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll: shutdown() waits for serve_forever to notice, 0.5 s per server by default.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: str | bytes = b"", **kwargs) -> Behaviour:
        behaviour = Behaviour(body=body.encode() if isinstance(body, str) else body, **kwargs)
        self.behaviours[path] = behaviour
        return behaviour

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                b = server.behaviours.get(self.path)
                if b is None:
                    self._reply(404, b"not found\n")
                    return
                b.requests.append({**dict(self.headers.items()), "client-port": str(self.client_address[1])})
                if b.mode == "slow":
                    time.sleep(b.delay)
                    self._reply(200, b.body)
                elif b.mode == "status":
                    self._reply(b.status, b"engine error\n")
                elif b.mode == "redirect":  # to the path in the body, relative
                    self.send_response(302)
                    self.send_header("Location", b.body.decode())
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif b.mode == "chunked":
                    self.send_response(200)
                    self.send_header("Content-Type", b.content_type)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(b.body), 1000):
                        piece = b.body[i:i + 1000]
                        self.wfile.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
                elif b.mode == "until_close":  # no Content-Length: the body ends with the connection
                    self.send_response(200)
                    self.send_header("Content-Type", b.content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b.body)
                    self.close_connection = True
                elif b.mode == "redirect_loop":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif b.mode == "drip":  # headers at once, then a byte at a time
                    self.send_response(200)
                    self.send_header("Content-Type", b.content_type)
                    self.send_header("Content-Length", str(len(b.body)))
                    self.end_headers()
                    for i in range(len(b.body)):
                        self.wfile.write(b.body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(b.delay)
                elif b.mode == "truncated":  # promise more than is sent, then hang up
                    self.send_response(200)
                    self.send_header("Content-Type", b.content_type)
                    self.send_header("Content-Length", str(len(b.body) * 2))
                    self.end_headers()
                    self.wfile.write(b.body)
                    self.wfile.flush()
                    self.close_connection = True
                elif b.mode in ("gzip", "gzip_bomb"):
                    self._reply(200, gzip.compress(b.body), {"Content-Encoding": "gzip"})
                else:
                    self._reply(b.status, b.body, content_type=b.content_type)

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                       content_type: str = "text/plain; version=0.0.4; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
