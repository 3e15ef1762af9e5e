"""Configuration read from the environment (tests override it through create_app)."""

import json
import os
import secrets
from pathlib import Path


def _secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, else one generated once into the instance folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # Create with 0600 so other local users cannot read it; never overwrite a key another
    # process wrote in the meantime.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _vapid_private_key(instance_path: str) -> str:
    """VAPID_PRIVATE_KEY from the environment, else the key `flask --app chipper vapid-keys`
    wrote into the instance folder, else none (push notifications are off)."""
    if key := os.environ.get("VAPID_PRIVATE_KEY", "").strip():
        return key
    path = Path(instance_path) / VAPID_KEY_FILE
    return path.read_text().strip() if path.exists() else ""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


VAPID_KEY_FILE = "vapid_private.pem"

LIMITS = {
    # Per address, and per account for sign-in (guessing one password from many places).
    "LIMIT_LOGIN": "10 per minute;100 per hour",
    "LIMIT_REGISTER": "10 per minute;100 per hour",
    # Per signed-in user.
    "LIMIT_SEND": "60 per minute;1000 per hour",
    "LIMIT_UPLOAD": "20 per minute;200 per hour",
    "LIMIT_TYPING": "60 per minute",
    "LIMIT_CALL_START": "10 per minute;60 per hour",
    "LIMIT_CALL_SIGNAL": "1200 per minute",
}

# Bytes a message form needs besides its attachment (5,000 characters of text, the token...).
FORM_ROOM = 256 * 1024


class Config:
    """Defaults for running the app; every value can be set through the environment."""

    def __init__(self, instance_path: str):
        self.SECRET_KEY = _secret_key(instance_path)
        self.SQLALCHEMY_DATABASE_URI = os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(instance_path, "chipper.sqlite3")
        )
        self.REDIS_URL = os.environ.get("REDIS_URL", "")
        self.UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER", os.path.join(instance_path, "uploads"))
        self.MAX_UPLOAD_MB = int(os.environ.get("MAX_UPLOAD_MB", 10))
        # Flask refuses bigger request bodies before reading them: one attachment plus room for
        # the message text and the form's other fields.
        self.MAX_CONTENT_LENGTH = self.MAX_UPLOAD_MB * 1024 * 1024 + FORM_ROOM
        self.STREAM_HEARTBEAT = float(os.environ.get("STREAM_HEARTBEAT", 15))
        # How long a stream holds an event that arrived ahead of an earlier one before it
        # reads the earlier one from the database: two processes publishing to one user a
        # moment apart reorder within milliseconds; a failed publish is retried or read back.
        self.STREAM_GAP_WAIT = float(os.environ.get("STREAM_GAP_WAIT", 1.0))
        # How long a new stream waits for the pub/sub subscription before it catches up.
        self.STREAM_SUBSCRIBE_WAIT = float(os.environ.get("STREAM_SUBSCRIBE_WAIT", 5.0))
        # Seconds after someone's last stream closes before they are shown offline (moving
        # between pages closes one stream and opens another).
        self.PRESENCE_OFFLINE_GRACE = float(os.environ.get("PRESENCE_OFFLINE_GRACE", 4.0))
        # Days an event is kept for a returning tab's replay (an admin may change it on the
        # admin page), and seconds between the scheduler's sweeps of older ones.
        self.EVENT_RETENTION_DAYS = int(os.environ.get("EVENT_RETENTION_DAYS", 7))
        self.EVENT_PRUNE_INTERVAL = float(os.environ.get("EVENT_PRUNE_INTERVAL", 3600))
        # Seconds between sweeps of uploads a crash cut off and of shares nobody sent.
        self.UPLOAD_SWEEP_INTERVAL = float(os.environ.get("UPLOAD_SWEEP_INTERVAL", 60))
        # Seconds the text of a send refused without JavaScript is kept for its composer.
        self.DRAFT_KEEP_SECONDS = float(os.environ.get("DRAFT_KEEP_SECONDS", 900))
        self.REDIS_PREFIX = os.environ.get("REDIS_PREFIX", "chipper")
        # Minutes after sending during which its author may edit a message; 0: no limit.
        self.EDIT_WINDOW_MINUTES = int(os.environ.get("EDIT_WINDOW_MINUTES", 60))
        # Argon2id's cost for password hashes: passes, memory (KiB) and lanes. OWASP's
        # minimum is 2 passes over 19 MiB; stronger settings rehash each password at sign-in.
        self.PASSWORD_HASH_TIME = int(os.environ.get("PASSWORD_HASH_TIME", 2))
        self.PASSWORD_HASH_MEMORY_KIB = int(os.environ.get("PASSWORD_HASH_MEMORY_KIB", 19456))
        self.PASSWORD_HASH_PARALLELISM = int(os.environ.get("PASSWORD_HASH_PARALLELISM", 1))
        # Abuse limits (chipper/limits.py), each "N per minute;M per hour". RATELIMIT_ENABLED=0
        # switches them off.
        self.RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1").strip() != "0"
        for name, default in LIMITS.items():
            setattr(self, name, os.environ.get(name, default))
        # Photos are kept at most this many pixels on their long side (phone photos are shrunk
        # once, as chat apps do), and photos decode at once in a process only while together
        # they need less than this much memory (one alone always may).
        self.IMAGE_MAX_SIDE = int(os.environ.get("IMAGE_MAX_SIDE", 2560))
        self.IMAGE_DECODE_MEMORY_MB = int(os.environ.get("IMAGE_DECODE_MEMORY_MB", 400))
        # Who may make an account: "open" (anyone who reaches the server), "invite" (with an
        # admin's invite link) or "closed". The first account, the admin, can always be made
        # from this machine or with the setup link the server logs until it exists.
        self.REGISTRATION = os.environ.get("REGISTRATION", "invite").strip().lower()
        # How many reverse proxies stand in front of the server: their X-Forwarded-For,
        # -Proto and -Host headers are believed (werkzeug's ProxyFix), none by default.
        self.TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", 0))
        # The address people open, for links printed outside a request (invites from the
        # command line, the setup link), e.g. https://chat.example.org.
        self.PUBLIC_URL = os.environ.get("PUBLIC_URL", "").strip().rstrip("/")
        # Registration takes only addresses at these domains (comma-separated) when set.
        self.EMAIL_DOMAINS = [
            d.strip().lower() for d in os.environ.get("EMAIL_DOMAINS", "").split(",") if d.strip()
        ]
        # An unanswered call becomes missed after this many seconds (a job at its deadline).
        self.CALL_RING_SECONDS = float(os.environ.get("CALL_RING_SECONDS", 45))
        # Seconds between sweeps for calls whose deadline job never ran (its process stopped).
        self.CALL_SWEEP_INTERVAL = float(os.environ.get("CALL_SWEEP_INTERVAL", 30))
        # STUN/TURN servers handed to the browsers of a call, as RTCPeerConnection's
        # `iceServers` JSON: '[{"urls": "stun:stun.example.org"}]'. None by default.
        self.ICE_SERVERS = json.loads(os.environ.get("ICE_SERVERS") or "[]")
        # Web Push: the server's key (PEM, or the raw key base64url), the contact push services
        # may use about it (mailto: or https:), and how long a push service keeps trying to
        # deliver a message notification; call notifications live as long as the call rings.
        self.VAPID_PRIVATE_KEY = _vapid_private_key(instance_path)
        self.VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:chipper@localhost")
        self.PUSH_TTL = int(os.environ.get("PUSH_TTL", 24 * 60 * 60))
        # Push endpoints on loopback, private or link-local addresses (and plain http) are
        # refused, so a signed-in user cannot make the server post to the local network.
        # Tests and a push service run on one's own network need them.
        self.PUSH_ALLOW_PRIVATE_ENDPOINTS = _flag("PUSH_ALLOW_PRIVATE_ENDPOINTS")

    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # A CSRF token lives as long as the session, so a tab left open for days can still post.
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # Live streams: a comment every STREAM_HEARTBEAT seconds keeps proxies open and notices
    # closed clients; a client more than STREAM_QUEUE_SIZE events behind is dropped (it
    # reconnects and replays); a reconnect replays at most STREAM_REPLAY_LIMIT events, and a
    # page that missed more reloads.
    STREAM_QUEUE_SIZE = 256
    STREAM_REPLAY_LIMIT = 500
    # Redis connections per process (pub/sub, publishing, presence): requests and streams
    # take turns on these.
    REDIS_POOL_SIZE = 20
    MESSAGES_PER_PAGE = 50
    MESSAGE_MAX_LENGTH = 5000
    # Larger images are refused before they are decoded (decompression bombs); an animation's
    # frames share the same budget.
    IMAGE_MAX_PIXELS = 50_000_000
    # Calls are a full mesh (everyone sends to everyone), which holds up to a few people.
    CALL_MAX_PARTICIPANTS = 4
    # An offer, answer or ICE candidate relayed between browsers: SDP is a few KB.
    CALL_SIGNAL_MAX_BYTES = 64 * 1024
    # Timeline thumbnails fit in a square of this many pixels.
    THUMBNAIL_SIZE = 640
    # Push services take up to 4 KB; a notification's text is cut well before that.
    PUSH_PAYLOAD_MAX_BYTES = 3000
    PUSH_BODY_MAX_CHARS = 200
    # Seconds a push service may take to answer; slow ones only hold up the sender thread.
    PUSH_TIMEOUT = 10
    # Browsers per user; subscribing one more forgets the one subscribed longest ago.
    PUSH_MAX_SUBSCRIPTIONS = 20
