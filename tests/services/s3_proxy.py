"""Fixture module: a counting HTTP proxy on 127.0.0.1 in front of the moto S3 server.

Every request is forwarded to moto unchanged; the proxy counts, per object key, the response body bytes of ``GET``
requests and the number of requests, so a test can say how much of an object a reader fetched *at the endpoint*
(what S3 would bill and send). An optional ``gate`` sees each request's access key id and bucket first and may refuse
it with an S3 error (``ExpiredToken`` for a temporary key past its expiry, ``AccessDenied`` for a bucket that refuses
direct access), as AWS does.

An optional :class:`Link` models the network to S3 instead of loopback: each answer starts no sooner than
``latency`` seconds after its request arrived (moto's own time counts towards it) and its body is sent at most at
``bandwidth`` bytes per second, per request (each request is its own stream; concurrent requests do not share it).

``S3Proxy`` is used by tests (fixture ``s3_proxy``) and by ``bench/inplace.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

#: ``gate(access_key_id, bucket, method) -> None`` to pass, or ``(status, S3 error code)`` to refuse.
Gate = Callable[[str, str, str], "tuple[int, str] | None"]
_PIECE = 16 * 1024
#: Path prefix of the proxy's own control requests (never forwarded).
CONTROL = "/__proxy__/"


@dataclass(frozen=True)
class Link:
    """A model of the network between a reader and S3: first-byte ``latency`` (s) and per-stream ``bandwidth``
    (bytes/s, ``None``: unlimited). With ``own_ranges`` the proxy answers ranged GETs itself from a copy of the
    object fetched once from moto: moto reads and copies the whole object for every ranged GET (tens of ms for a
    30 MB object on these machines), which S3 does not, so only the modelled latency and bandwidth remain."""

    latency: float = 0.0
    bandwidth: float | None = None
    own_ranges: bool = False

    def first_byte(self, started: float) -> None:
        """Wait until ``latency`` seconds after ``started`` (a ``time.monotonic()`` value)."""
        wait = started + self.latency - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def stream(self, write: Callable[[bytes], Any], data: bytes) -> None:
        """Write ``data`` no faster than ``bandwidth``."""
        if not self.bandwidth:
            write(data)
            return
        begin = time.monotonic()
        for at in range(0, len(data), _PIECE):
            piece = data[at:at + _PIECE]
            ahead = begin + (at + len(piece)) / self.bandwidth - time.monotonic()  # a piece's last byte arrives
            if ahead > 0:  # no sooner than the bandwidth lets it
                time.sleep(ahead)
            write(piece)


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _forward(self) -> None:
        started = time.monotonic()
        proxy = self.server.owner
        if self.path.startswith(CONTROL):
            self._control()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        bucket, key = _bucket_key(self.path)
        refusal = proxy.gate(_access_key(self.headers.get("Authorization", "")), bucket, self.command) \
            if proxy.gate is not None else None
        if refusal is not None:
            self._refuse(*refusal)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        link = proxy.link or Link()
        wanted = self.headers.get("Range", "")
        plain = urlsplit(self.path).query in ("", "x-id=GetObject")  # an object GET, not a listing or an upload
        if self.command != "GET" or not plain:
            proxy.forget(self.path)
        if link.own_ranges and self.command == "GET" and wanted.startswith("bytes=") and plain:
            status, reason, answer, data = proxy.ranged(urlsplit(self.path).path, headers, wanted)
        else:
            status, reason, answer, data = proxy.upstream(self.command, self.path, body, headers)
        proxy.record(self.command, bucket, key, len(data))
        self.send_response(status, reason)
        for k, v in answer:
            if k.lower() not in _HOP_HEADERS and k.lower() != "content-length":
                self.send_header(k, v)
        # A HEAD answer has no body but the object's length.
        self.send_header("Content-Length", dict((k.lower(), v) for k, v in answer).get("content-length", "0")
                         if self.command == "HEAD" else str(len(data)))
        link.first_byte(started)
        self.end_headers()
        if self.command != "HEAD":
            link.stream(self.wfile.write, data)

    def _control(self) -> None:
        """``GET /__proxy__/stats``: the counters as JSON; ``POST /__proxy__/reset``: clear them; ``POST
        /__proxy__/link?latency=S&bandwidth=B``: change the link model (bandwidth 0: unlimited)."""
        proxy = self.server.owner
        what = urlsplit(self.path)
        if what.path == f"{CONTROL}reset":
            proxy.reset()
        elif what.path == f"{CONTROL}link":
            query = {k: float(v[0]) for k, v in parse_qs(what.query).items()}
            proxy.link = Link(query.get("latency", 0.0), query.get("bandwidth") or None,
                              bool(query.get("own_ranges", 0.0)))
        with proxy._lock:
            body = json.dumps({"bytes": dict(proxy.bytes_out), "requests": dict(proxy.requests)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, code: str) -> None:
        self.server.owner.record(f"REFUSED {code}", *_bucket_key(self.path), 0)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{code} (test gate)</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: S3Proxy


def _bucket_key(path: str) -> tuple[str, str]:
    parts = unquote(urlsplit(path).path).lstrip("/").split("/", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _access_key(authorization: str) -> str:
    m = _CREDENTIAL.search(authorization)
    return m.group(1) if m else ""


class S3Proxy:
    """A counting proxy to ``upstream`` (``http://127.0.0.1:PORT``) listening on 127.0.0.1 (a free port)."""

    def __init__(self, upstream: str, gate: Gate | None = None, link: Link | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the proxy forwards to loopback only")
        self.upstream_host, self.upstream_port = str(parts.hostname), int(parts.port or 80)
        self.gate = gate
        self.link = link
        self._lock = threading.Lock()
        self.bytes_out: Counter[str] = Counter()
        self._objects: dict[str, tuple[int, str, list[tuple[str, str]], bytes]] = {}
        self.requests: Counter[str] = Counter()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True)
        self._thread.start()

    def upstream(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """The request forwarded to moto: ``(status, reason, headers, body)``."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def ranged(self, path: str, headers: dict[str, str], wanted: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """A ranged GET answered from the proxy's copy of the object (see :class:`Link`), as S3 answers it."""
        with self._lock:
            whole = self._objects.get(path)
        if whole is None:
            whole = self.upstream("GET", path, None, {k: v for k, v in headers.items() if k.lower() != "range"})
            if whole[0] != 200:
                return whole
            with self._lock:
                self._objects[path] = whole
        _, _, answer, data = whole
        first, _, last = wanted[len("bytes="):].partition("-")
        start, size = int(first), len(data)
        stop = min(size - 1, int(last)) if last else size - 1
        if start >= size or stop < start:
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code>'
                    b"<Message>The requested range is not satisfiable</Message></Error>")
            return 416, "Requested Range Not Satisfiable", [("Content-Type", "application/xml")], body
        kept = [(k, v) for k, v in answer  # S3 sends no whole-object checksum with a range
                if k.lower() not in ("content-length", "content-range") and not k.lower().startswith("x-amz-checksum")]
        return 206, "Partial Content", [*kept, ("Content-Range", f"bytes {start}-{stop}/{size}")], \
            data[start:stop + 1]

    def forget(self, path: str) -> None:
        with self._lock:
            self._objects.pop(urlsplit(path).path, None)

    def record(self, method: str, bucket: str, key: str, nbytes: int) -> None:
        with self._lock:
            name = f"{bucket}/{key}"
            self.requests[f"{method} {name}"] += 1
            if method == "GET":
                self.bytes_out[name] += nbytes

    def reset(self) -> None:
        with self._lock:
            self.bytes_out.clear()
            self.requests.clear()

    def fetched(self, bucket: str, key: str) -> int:
        """Body bytes sent for GETs of one object since the last :meth:`reset`."""
        with self._lock:
            return self.bytes_out[f"{bucket}/{key}"]

    def count(self, prefix: str) -> int:
        """Requests whose ``"METHOD bucket/key"`` starts with ``prefix``."""
        with self._lock:
            return sum(n for k, n in self.requests.items() if k.startswith(prefix))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class ProxyProcess:
    """An :class:`S3Proxy` in a process of its own (``python -m tests.services.s3_proxy``), so that a benchmark's
    timings do not share the reader's interpreter lock with the proxy's threads. Same counters, read over HTTP."""

    def __init__(self, upstream: str, link: Link | None = None) -> None:
        link = link or Link()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.services.s3_proxy", upstream, str(link.latency), str(link.bandwidth or 0)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError("the proxy process did not start")

    def _call(self, what: str, method: str = "GET") -> dict[str, Any]:
        request = urllib.request.Request(f"{self.endpoint}{CONTROL}{what}", method=method, data=b"" if method ==
                                         "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def reset(self) -> None:
        self._call("reset", "POST")

    def set_link(self, link: Link) -> None:
        self._call(f"link?latency={link.latency}&bandwidth={link.bandwidth or 0}&own_ranges={int(link.own_ranges)}",
                   "POST")

    def fetched(self, bucket: str, key: str) -> int:
        return int(self._call("stats")["bytes"].get(f"{bucket}/{key}", 0))

    def count(self, prefix: str) -> int:
        return sum(n for k, n in self._call("stats")["requests"].items() if k.startswith(prefix))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _serve(argv: list[str]) -> None:
    """``python -m tests.services.s3_proxy UPSTREAM [LATENCY_S [BANDWIDTH_BPS]]``: print the endpoint, serve until
    killed."""
    latency = float(argv[1]) if len(argv) > 1 else 0.0
    bandwidth = float(argv[2]) if len(argv) > 2 else 0.0
    proxy = S3Proxy(argv[0], link=Link(latency, bandwidth or None))
    print(proxy.endpoint, flush=True)
    parent = os.getppid()
    try:
        while os.getppid() == parent:  # never outlive the process that started it
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    proxy.close()


@pytest.fixture
def s3_proxy(moto_s3_endpoint: str) -> Iterator[S3Proxy]:
    """A fresh counting proxy in front of the session's moto server (not put in the environment)."""
    proxy = S3Proxy(moto_s3_endpoint)
    try:
        yield proxy
    finally:
        proxy.close()


if __name__ == "__main__":
    _serve(sys.argv[1:])
