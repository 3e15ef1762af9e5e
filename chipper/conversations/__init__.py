from flask import Blueprint

bp = Blueprint("conversations", __name__)

from chipper.conversations import routes  # noqa: E402,F401  (registers the routes on bp)
