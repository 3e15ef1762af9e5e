from flask import Blueprint

bp = Blueprint("search", __name__)

from chipper.search import routes  # noqa: E402,F401  (registers the routes on bp)
