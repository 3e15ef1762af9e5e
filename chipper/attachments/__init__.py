from flask import Blueprint

bp = Blueprint("attachments", __name__)

from chipper.attachments import routes  # noqa: E402,F401  (registers the routes on bp)
