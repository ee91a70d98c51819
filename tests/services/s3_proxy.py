"""Fixture module: a counting HTTP proxy on 127.0.0.1 in front of the moto S3 server.

Every request is forwarded to moto unchanged; the proxy counts, per object key, the response body bytes of ``GET``
requests and the number of requests, so a test can say how much of an object a reader fetched *at the endpoint*
(what S3 would bill and send). An optional ``gate`` sees each request's access key id and bucket first and may refuse
it with an S3 error (``ExpiredToken`` for a temporary key past its expiry, ``AccessDenied`` for a bucket that refuses
direct access), as AWS does.

``S3Proxy`` is used by tests (fixture ``s3_proxy``) and by ``bench/inplace.py``.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

#: ``gate(access_key_id, bucket, method) -> None`` to pass, or ``(status, S3 error code)`` to refuse.
Gate = Callable[[str, str, str], "tuple[int, str] | None"]
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _forward(self) -> None:
        proxy = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        bucket, key = _bucket_key(self.path)
        refusal = proxy.gate(_access_key(self.headers.get("Authorization", "")), bucket, self.command) \
            if proxy.gate is not None else None
        if refusal is not None:
            self._refuse(*refusal)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        proxy.record(self.command, bucket, key, len(data))
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_HEADERS and k.lower() != "content-length":
                self.send_header(k, v)
        # A HEAD answer has no body but the object's length.
        self.send_header("Content-Length", resp.getheader("Content-Length", "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

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

    def __init__(self, upstream: str, gate: Gate | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the proxy forwards to loopback only")
        self.upstream_host, self.upstream_port = str(parts.hostname), int(parts.port or 80)
        self.gate = gate
        self._lock = threading.Lock()
        self.bytes_out: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True)
        self._thread.start()

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


@pytest.fixture
def s3_proxy(moto_s3_endpoint: str) -> Iterator[S3Proxy]:
    """A fresh counting proxy in front of the session's moto server (not put in the environment)."""
    proxy = S3Proxy(moto_s3_endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
