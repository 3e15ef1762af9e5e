from flask import Blueprint

bp = Blueprint("pwa", __name__)

from chipper.pwa import routes  # noqa: E402,F401  (registers the routes on bp)
