"""Push notifications' web side: the server's public key and the browsers that take the
signed-in user's notifications (chipper.push sends them)."""

from flask import Blueprint

bp = Blueprint("notifications", __name__)

from chipper.notifications import routes  # noqa: E402,F401  (registers the routes on bp)
