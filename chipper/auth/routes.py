"""Register, log in, log out."""

import sqlalchemy as sa
from flask import jsonify, make_response, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from chipper.auth import bp
from chipper.extensions import db, login_manager
from chipper.models import User
from chipper.push import SESSION_KEY
from chipper.services import Invalid
from chipper.services.accounts import authenticate, register_user
from chipper.services.push import forget_browser
from chipper.web import form_value, json_error, page, safe_next, see_other, wants_json

# Every signed-in request runs this. A select built once costs about half what
# session.get() does, which builds its query anew each time.
_USER_BY_ID = sa.select(User).where(User.id == sa.bindparam("id"))


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    return db.session.scalars(_USER_BY_ID, {"id": int(user_id)}).first()


@login_manager.unauthorized_handler
def unauthorized():
    if wants_json():
        return json_error("Log in first.", 401)
    return see_other(url_for("auth.login", next=request.full_path.rstrip("?")))


def _signed_in(user: User, status: int = 200):
    next_url = safe_next(request.args.get("next"), url_for("conversations.index"))
    if wants_json():
        return jsonify(user=user.to_json(), csrf_token=generate_csrf()), status
    return see_other(next_url)


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated and request.method == "GET":
        return see_other(url_for("conversations.index"))
    if request.method == "GET":
        if wants_json():
            return jsonify(csrf_token=generate_csrf())
        return page("auth/register.html", values={}, errors={})
    values = {"name": form_value("name"), "email": form_value("email")}
    try:
        user = register_user(values["name"], values["email"], form_value("password"))
    except Invalid as error:
        if wants_json():
            return json_error(error.message, 422, error.field)
        return page(
            "auth/register.html", status=422, values=values, errors={error.field: error.message}
        )
    login_user(user)
    return _signed_in(user, 201)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if wants_json():
            return jsonify(csrf_token=generate_csrf())
        if current_user.is_authenticated:
            return see_other(url_for("conversations.index"))
        return page("auth/login.html", values={}, error=None)
    email = form_value("email")
    user = authenticate(email, form_value("password"))
    if user is None:
        message = "That email and password do not match an account."
        if wants_json():
            return json_error(message, 401)
        return page("auth/login.html", status=401, values={"email": email}, error=message)
    login_user(user, remember=form_value("remember") in ("on", "1", "true", "True"))
    return _signed_in(user)


@bp.post("/logout")
@login_required
def logout():
    # The next person signed in on this browser must not get this user's notifications.
    forget_browser(current_user, session.pop(SESSION_KEY, None))
    logout_user()
    response = ("", 204) if wants_json() else see_other(url_for("auth.login"))
    response = make_response(response)
    # Nothing of this account stays on the device: the browser's cache, and the service
    # worker's saved pages (site storage; the worker registers again on the next page).
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.get("/")
def home():
    return see_other(
        url_for("conversations.index" if current_user.is_authenticated else "auth.login")
    )
