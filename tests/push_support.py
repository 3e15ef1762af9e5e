"""Push test support: a local HTTP server that plays a browser vendor's push service, and a
browser's side of a subscription (its key pair and auth secret), which decrypts what arrives.

Nothing here stands in for the push library: the app encrypts and signs with pywebpush, and
these check the bytes on the wire the way a push service and a browser would.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

TIMEOUT = 10.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class PushService:
    """Records every POST (path, headers, body) and answers 201, or what `answers` says for a
    path: a status, or (status, headers)."""

    def __init__(self):
        self.received: list[Received] = []
        self.answers: dict[str, int | tuple[int, dict]] = {}
        self._changed = threading.Condition()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with service._changed:
                    service.received.append(Received(self.path, headers, body))
                    service._changed.notify_all()
                answer = service.answers.get(self.path, 201)
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def endpoint(self, token: str) -> str:
        return f"{self.origin}/push/{token}"

    def to(self, token: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.path == f"/push/{token}"]

    def wait(self, token: str, count: int = 1, timeout: float = TIMEOUT) -> list[Received]:
        """The first `count` requests for that subscription, waiting for them to arrive."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.to(token)) >= count, timeout)
        if not arrived:
            raise AssertionError(f"{count} push(es) to {token} did not arrive; got {self.received}")
        return self.to(token)[:count]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """A browser's push subscription: the key pair and auth secret it makes, and reading what
    the push service hands it."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    @property
    def p256dh(self) -> str:
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def subscription(self, endpoint: str) -> dict:
        """As PushSubscription.toJSON() gives it."""
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def read(self, received: Received) -> dict:
        assert received.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(
            received.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


def vapid_claims(authorization: str, public_key: str) -> dict:
    """The JWT claims of an RFC 8292 `Authorization: vapid t=<JWT>, k=<key>` header, after
    checking that the key is `public_key` and that it signed the token (ES256)."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key
    header, claims, signature = fields["t"].split(".")
    assert json.loads(unb64url(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    assert len(raw) == 64
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    # Raises InvalidSignature unless our key signed exactly these bytes.
    key.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{header}.{claims}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    return json.loads(unb64url(claims))
