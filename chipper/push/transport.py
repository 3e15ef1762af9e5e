"""Posting one encrypted notification to a browser's push service, and which push services
the server may post to at all."""

from __future__ import annotations

import enum
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from flask import current_app

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SENT = "sent"
    # The push service says the subscription is gone (404, 410): forget it.
    GONE = "gone"
    # Anything else (the service is down, slow or refused this one): keep it, try next time.
    FAILED = "failed"


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def host_problem(host: str, port: int | None) -> str | None:
    """Why the server must not post to this host, or None. Push services are public names;
    a user naming an address on our own network (loopback, private, link-local) would make
    the server send requests there for them."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "Push endpoints name a push service's host, not an IP address."
    try:
        found = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return "The push endpoint's host could not be found."
    for *_, sockaddr in found:
        # An IPv6 address may carry a zone ("fe80::1%eth0").
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not _is_public(address):
            return "The push endpoint's host is on a private network."
    return None


def allows_private() -> bool:
    return bool(current_app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"])


def _session():
    """One HTTP session per process (push services keep connections alive) that never
    follows redirects: a redirect could point the POST at our own network."""
    push = current_app.extensions["chipper.push"]
    if push.http is None:
        import requests

        class NoRedirects(requests.Session):
            def request(self, *args, **kwargs):
                kwargs["allow_redirects"] = False
                return super().request(*args, **kwargs)

        push.http = NoRedirects()
    return push.http


def send(endpoint: str, p256dh: str, auth: str, data: str, *, ttl: int, urgency: str) -> Outcome:
    """Encrypts `data` for the subscription (aes128gcm), signs the request with our VAPID key
    and posts it. Never raises: a push that fails is logged."""
    from pywebpush import WebPushException, webpush

    push = current_app.extensions["chipper.push"]
    config = current_app.config
    parts = urlsplit(endpoint)
    if not allows_private():
        # Again at sending: the name may point somewhere else than when it was subscribed.
        problem = host_problem(parts.hostname or "", parts.port)
        if problem:
            log.warning("push to %s skipped: %s", parts.hostname, problem)
            return Outcome.FAILED
    try:
        webpush(
            subscription_info={"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            data=data,
            vapid_private_key=push.vapid,
            # A new dict each time: webpush() writes the audience and expiry into it.
            vapid_claims={"sub": config["VAPID_SUBJECT"]},
            ttl=ttl,
            headers={"Urgency": urgency},
            timeout=config["PUSH_TIMEOUT"],
            requests_session=_session(),
        )
    except WebPushException as error:
        status = getattr(error.response, "status_code", None)
        if status in (404, 410):
            return Outcome.GONE
        log.warning("push to %s refused: %s %s", parts.hostname, status, error.message[:200])
        return Outcome.FAILED
    except Exception as error:  # network errors, a key the library cannot use...
        log.warning("push to %s failed: %r", parts.hostname, error)
        return Outcome.FAILED
    return Outcome.SENT
