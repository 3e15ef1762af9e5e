from flask import Blueprint

bp = Blueprint("people", __name__)

from chipper.people import routes  # noqa: E402,F401  (registers the routes on bp)
