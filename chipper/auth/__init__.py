from flask import Blueprint

bp = Blueprint("auth", __name__)

from chipper.auth import account, routes  # noqa: E402,F401  (registers the routes on bp)
