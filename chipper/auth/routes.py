"""Register, log in, log out."""

import hashlib
import hmac
import ipaddress

from flask import current_app, jsonify, make_response, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from chipper.auth import bp
from chipper.extensions import login_manager
from chipper.limits import configured, limiter, per_account
from chipper.models import User
from chipper.push import SESSION_KEY
from chipper.services import Forbidden, Invalid, sessions
from chipper.services.accounts import (
    FIRST_ACCOUNT,
    authenticate,
    has_accounts,
    join,
    refusal,
    registration_mode,
)
from chipper.services.push import forget_browser
from chipper.web import form_value, json_error, page, safe_next, see_other, wants_json


@login_manager.user_loader
def load_user(token: str) -> User | None:
    """The session and the remember-me cookie carry a sign-in's token, not the user id."""
    return sessions.load(token)


def sign_in(user: User, remember: bool = False) -> None:
    login_user(sessions.start(user, request.user_agent.string), remember=remember)


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


def setup_token() -> str:
    """The setup link's secret: made from SECRET_KEY, so every worker knows it; it opens the
    register page only while the server has no account."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"chipper setup link", hashlib.sha256).hexdigest()[:32]


def _trusted(setup: str) -> bool:
    """The first account is made from the server's own machine (not through a proxy, which
    forwards everyone's requests from there) or with the setup link."""
    if setup and hmac.compare_digest(setup, setup_token()):
        return True
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    return loopback and not (forwarded and current_app.config["TRUSTED_PROXIES"] == 0)


def _log_setup_link() -> None:
    """Once per process: the operator reads it in the server's log."""
    if not current_app.extensions.get("chipper.setup_logged"):
        current_app.extensions["chipper.setup_logged"] = True
        link = url_for("auth.register", setup=setup_token(), _external=True)
        if base := current_app.config.get("PUBLIC_URL"):
            link = base + url_for("auth.register", setup=setup_token())
        current_app.logger.warning("No account yet. Make the admin account at %s", link)


def _register_page(invite: str, setup: str, values: dict, errors: dict, status: int = 200):
    reason = refusal(invite, trusted=_trusted(setup))
    if reason == FIRST_ACCOUNT:
        _log_setup_link()
    if wants_json():
        return jsonify(csrf_token=generate_csrf(), registration=registration_mode(), refusal=reason)
    if reason and status == 200 and invite:
        status = 403
    hidden = {"invite": invite, "setup": setup}
    context = {"values": values, "errors": errors, "refusal": reason, "hidden": hidden}
    return page("auth/register.html", status=status, first=not has_accounts(), **context)


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(configured("LIMIT_REGISTER"), methods=["POST"])
def register():
    if current_user.is_authenticated and request.method == "GET":
        return see_other(url_for("conversations.index"))
    invite = form_value("invite") or request.args.get("invite", "")
    setup = form_value("setup") or request.args.get("setup", "")
    if request.method == "GET":
        return _register_page(invite, setup, {}, {})
    values = {"name": form_value("name"), "email": form_value("email")}
    try:
        user = join(
            values["name"],
            values["email"],
            form_value("password"),
            invite_token=invite,
            trusted=_trusted(setup),
        )
    except (Forbidden, Invalid) as error:
        if wants_json():
            return json_error(error.message, error.status, error.field)
        errors = {error.field: error.message} if error.field else {}
        return _register_page(invite, setup, values, errors, error.status)
    sign_in(user)
    return _signed_in(user, 201)


def _joining() -> dict:
    """What the login page says to someone without an account."""
    return {"registration": registration_mode() if has_accounts() else "first"}


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(configured("LIMIT_LOGIN"), methods=["POST"])
@limiter.limit(configured("LIMIT_LOGIN"), methods=["POST"], key_func=per_account)
def login():
    if request.method == "GET":
        if wants_json():
            return jsonify(csrf_token=generate_csrf())
        if current_user.is_authenticated:
            return see_other(url_for("conversations.index"))
        return page("auth/login.html", values={}, error=None, **_joining())
    email = form_value("email")
    user = authenticate(email, form_value("password"))
    if user is None:
        message = "That email and password do not match an account."
        if wants_json():
            return json_error(message, 401)
        context = {"values": {"email": email}, "error": message, **_joining()}
        return page("auth/login.html", status=401, **context)
    sign_in(user, remember=form_value("remember") in ("on", "1", "true", "True"))
    return _signed_in(user)


@bp.post("/logout")
@login_required
def logout():
    # The next person signed in on this browser must not get this user's notifications.
    forget_browser(current_user, session.pop(SESSION_KEY, None))
    # The server ends the sign-in: a copy of this browser's cookies no longer works either.
    sessions.end(current_user)
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
