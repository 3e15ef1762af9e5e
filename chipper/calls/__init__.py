from flask import Blueprint

bp = Blueprint("calls", __name__)

from chipper.calls import routes  # noqa: E402,F401  (registers the routes on bp)
