"""Serve a captured /metrics payload as if an engine were answering: a stand-in for demos and tests."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("infersight.replay")


def make_handler(body: bytes, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.split("?", 1)[0] != path:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log.debug(format, *args)

    return Handler


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: a benchmark opens a thousand connections at once


def serve_file(file: Path, listen: str, path: str = "/metrics") -> None:
    host, _, port = listen.rpartition(":")
    server = ReplayServer((host, int(port)), make_handler(file.read_bytes(), path))
    log.info("serving file=%s address=%s path=%s", file, listen, path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
