from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from chipper.admin import routes  # noqa: E402,F401  (registers the routes on bp)
