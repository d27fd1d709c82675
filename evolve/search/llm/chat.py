"""A client of the OpenAI-compatible chat-completions protocol, over HTTP, stdlib only.

``complete`` sends one request (``POST {base_url}/chat/completions``) and returns a
``Reply``; it never raises for what the network or the server does. vLLM, the llama.cpp
server, Ollama (``/v1``) and hosted APIs speak this protocol.

A request has one deadline, ``timeout`` seconds after it starts, that covers every
attempt and every wait between attempts. A watchdog thread shuts the socket down when the
deadline passes, so a server that never answers, or trickles bytes, is cut off: the call
returns within the deadline (plus scheduling), never later. 429 and 5xx answers and
network errors are retried up to ``retries`` times with exponential backoff (jittered,
or the server's ``Retry-After`` in seconds), while the deadline allows.

Failure kinds (``Reply.error``):
  timeout       the deadline passed; the connection was closed
  http          a status other than 200 (429 and 5xx once retries are spent)
  network       the connection failed (refused, reset, name not found) and retries are spent
  too_long      the response passed ``max_bytes``; the connection was closed
  bad_response  a 200 that is not a chat-completions object with a text message
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

FAILURES = ("timeout", "http", "network", "too_long", "bad_response")


@dataclass(frozen=True)
class Reply:
    """What one request came to: the message text, or a failure kind and its detail."""

    content: str | None
    error: str | None = None  # one of FAILURES, or None
    detail: str = ""
    tokens_in: int | None = None  # as the server reported them (usage), if it did
    tokens_out: int | None = None
    attempts: int = 1
    seconds: float = 0.0


class _Timeout(Exception):
    pass


class _TooLong(Exception):
    pass


class _Watchdog:
    """Shuts down the socket of the attached connection once ``seconds`` have passed."""

    def __init__(self, seconds: float):
        self.fired = False
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            fired = self.fired
        if fired:
            _shutdown(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            conn = self._conn
        if conn is not None:
            _shutdown(conn)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def endpoint(base_url: str) -> str:
    """The chat-completions URL of an OpenAI-compatible ``base_url`` (``.../v1``)."""
    return base_url.rstrip("/") + "/chat/completions"


def _post(url: str, data: bytes, headers: dict, deadline: float, max_bytes: int,
          watchdog: _Watchdog) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Timeout
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=remaining,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=remaining)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        watchdog.attach(conn)
        conn.request("POST", path, data, headers)
        resp = conn.getresponse()
        declared = resp.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _TooLong
        body = bytearray()
        while chunk := resp.read1(65536):
            body += chunk
            if len(body) > max_bytes:
                raise _TooLong
        if watchdog.fired:
            raise _Timeout
        return resp.status, resp.headers, bytes(body)
    except (OSError, http.client.HTTPException):
        if watchdog.fired or time.monotonic() >= deadline:
            raise _Timeout from None
        raise
    finally:
        conn.close()


def _retry_after(headers: http.client.HTTPMessage | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(value), 0.0), 600.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use our own backoff


def _parse(body: bytes) -> tuple[str | None, str, int | None, int | None]:
    """(content, problem, prompt tokens, completion tokens) of a 200 response body."""
    try:
        obj = json.loads(body)
        message = obj["choices"][0]["message"]
        content = message["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None, f"not a chat-completions response: {body[:200]!r}", None, None
    if not isinstance(content, str):
        return None, f"the message has no text content ({type(content).__name__})", None, None
    usage = obj.get("usage") if isinstance(obj, dict) else None
    usage = usage if isinstance(usage, dict) else {}

    def count(name):
        v = usage.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    return content, "", count("prompt_tokens"), count("completion_tokens")


def complete(base_url: str, body: dict, *, api_key: str | None = None, timeout: float = 60.0,
             retries: int = 3, backoff: float = 1.0, max_bytes: int = 1 << 20,
             jitter: random.Random | None = None) -> Reply:
    """POST ``body`` (a chat-completions request) to ``base_url``; the outcome as a Reply.

    ``api_key`` goes into an ``Authorization: Bearer`` header and nowhere else.
    """
    start = time.monotonic()
    deadline = start + timeout
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    jitter = jitter or random.Random(0)
    watchdog = _Watchdog(timeout)
    attempt = 0
    try:
        while True:
            attempt += 1
            status, head, error = None, None, None
            try:
                status, head, raw = _post(endpoint(base_url), data, headers, deadline,
                                          max_bytes, watchdog)
            except _Timeout:
                return _done(start, attempt, "timeout", f"no complete answer within {timeout:g} s")
            except _TooLong:
                return _done(start, attempt, "too_long", f"the response passed {max_bytes} bytes")
            except (OSError, http.client.HTTPException) as e:
                error = ("network", f"{type(e).__name__}: {e}")
            if status == 200:
                content, problem, t_in, t_out = _parse(raw)
                if content is None:
                    return _done(start, attempt, "bad_response", problem)
                return Reply(content, None, "", t_in, t_out, attempt, time.monotonic() - start)
            if error is None:
                text = raw[:200].decode("utf-8", "replace")
                error = ("http", f"HTTP {status}: {text}")
                if not (status == 429 or 500 <= status < 600):
                    return _done(start, attempt, *error)
            if attempt > retries:
                return _done(start, attempt, *error)
            wait = _retry_after(head)
            if wait is None:
                wait = backoff * 2 ** (attempt - 1) * (0.5 + 0.5 * jitter.random())
            if time.monotonic() + wait >= deadline:
                return _done(start, attempt, error[0],
                             error[1] + f" (no time left for retry {attempt} of {retries})")
            time.sleep(wait)
    finally:
        watchdog.cancel()


def _done(start: float, attempts: int, kind: str, detail: str) -> Reply:
    return Reply(None, kind, detail, None, None, attempts, time.monotonic() - start)
