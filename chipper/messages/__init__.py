from flask import Blueprint

bp = Blueprint("messages", __name__)

from chipper.messages import routes  # noqa: E402,F401  (registers the routes on bp)
