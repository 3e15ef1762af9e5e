"""VAPID keys (RFC 8292): the server signs every push with its private key, and browsers
subscribe with its public key, so a push service takes notifications for them from us only."""

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode


class BadKey(ValueError):
    """A VAPID_PRIVATE_KEY that is not a P-256 private key."""


def load(text: str) -> Vapid02:
    """A key from PEM text, or from base64url: the raw 32-byte key or DER."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            vapid = Vapid02(key)
        else:
            vapid = Vapid02.from_string(text)
    except (ValueError, TypeError) as error:
        raise BadKey(f"VAPID_PRIVATE_KEY is not a private key: {error}") from None
    key = vapid.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BadKey("VAPID_PRIVATE_KEY must be an EC P-256 (prime256v1) key.")
    return vapid


def public_key(vapid: Vapid02) -> str:
    """The public key as browsers take it for applicationServerKey: the uncompressed point
    (65 bytes), base64url without padding."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(raw)


def create_key_file(path: Path, *, force: bool = False) -> Vapid02:
    """A new key written to `path`, readable by its owner only. An existing file is kept
    unless `force`: browsers subscribed with the old key stop getting notifications."""
    vapid = Vapid02()
    vapid.generate_keys()
    pem = vapid.private_pem()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not force:
        # O_EXCL: never overwrite, even a file another process created a moment ago.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return vapid
    # Replaced in one step, so a server starting meanwhile reads the old key or the new one.
    # mkstemp creates the file with mode 0600.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".vapid-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return vapid
