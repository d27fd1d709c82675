"""A small OpenAI-compatible chat-completions server for tests, answering from a script.

    with ChatServer(lambda request, n: Answer("r1 = add(r0, r0)\\nreturn r1")) as server:
        ...  # POST server.url + "/chat/completions"

The script is called with the parsed request body and the number of requests seen before
(0, 1, ...) and returns an ``Answer``: a message text, or a status, a raw body, a delay
before answering, a slow trickle of bytes, headers. A list of answers is served in order
(the last repeats). Every request's body and headers are recorded in ``requests``. It
listens on 127.0.0.1 only (on ``port``, or a free one); no test calls the internet.
``free_port()`` names a port nothing listens on yet: a server that is down, to be started
later with ``ChatServer(script, port)``.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answer:
    """What the server sends for one request."""

    content: str | None = None  # the assistant message (a chat-completions object)
    status: int = 200
    delay: float = 0.0  # seconds before the status line
    trickle: float = 0.0  # seconds between bytes of the body
    body: bytes | None = None  # a raw body instead of a chat-completions object
    headers: dict = field(default_factory=dict)
    usage: tuple[int, int] | None = (100, 20)  # prompt and completion tokens, or none


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server's name)
        server: ChatServer = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            request = {"unparsed": raw.decode("utf-8", "replace")}
        with server.lock:
            n = len(server.requests)
            server.requests.append(request)
            server.headers.append(dict(self.headers))
        if self.path.rstrip("/") != "/v1/chat/completions":
            answer = Answer(status=404, body=b'{"error": "not found"}')
        else:
            answer = server.answer(request, n)
        if answer.delay and server.stopping.wait(answer.delay):
            return
        body = answer.body
        if body is None:
            obj = {"id": f"chat-{n}", "object": "chat.completion",
                   "model": request.get("model", ""),
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": answer.content}}]}
            if answer.usage is not None:
                obj["usage"] = {"prompt_tokens": answer.usage[0],
                                "completion_tokens": answer.usage[1],
                                "total_tokens": sum(answer.usage)}
            body = json.dumps(obj).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if answer.trickle:
                for i in range(len(body)):
                    if server.stopping.wait(answer.trickle):
                        return
                    self.wfile.write(body[i: i + 1])
                    self.wfile.flush()
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (its timeout): fine


class ChatServer:
    """The server, in a background thread, from ``start`` (or ``with``) to ``stop``."""

    def __init__(self, script: Callable[[dict, int], Answer] | list[Answer], port: int = 0):
        self.script = script
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._http.daemon_threads = True
        self._http.owner = self
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL, as ``llm.base_url`` takes it."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def answer(self, request: dict, n: int) -> Answer:
        if callable(self.script):
            return self.script(request, n)
        return self.script[min(n, len(self.script) - 1)]

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
