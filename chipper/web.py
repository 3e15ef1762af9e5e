"""What every blueprint shares: picking a representation, reading input, security headers."""

import io
import json
import math
import tempfile
from urllib.parse import parse_qs, quote, urlsplit

import flask
from flask import Flask, jsonify, make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from chipper.media import storage
from chipper.models import MAX_ID
from chipper.services import Invalid, ServiceError

OVERRIDABLE = {"PATCH", "PUT", "DELETE"}
OVERRIDE_BODY_LIMIT = 64 * 1024

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class Request(flask.Request):
    """Flask's request, except that a disk too full for the form parser is the sender's clear
    error. A file bigger than 500 KB is spooled to a temporary file while the body is parsed,
    before any view (or the CSRF check) runs: the disk filling up there answers 507 with the
    same words as when storage meets it, never a 500."""

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except OSError as error:
            if error.errno is None:
                raise
            # Nothing of the body is kept (the spooled file was anonymous, and is gone): an
            # empty form, so whatever reads the form next (an error page) finds no fields.
            self.form, self.files = ImmutableMultiDict(), ImmutableMultiDict()
            self.stream = io.BytesIO()
            raise storage.refusal(error, tempfile.gettempdir()) from error


class MethodOverride:
    """WSGI middleware: a POSTed form with `_method=PATCH|PUT|DELETE` is routed as that method.

    Browsers without JavaScript can only send GET and POST. Only small url-encoded bodies are
    read (the forms that carry `_method` are tiny); the body is put back for Flask to parse.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_TYPE", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if 0 < length <= OVERRIDE_BODY_LIMIT:
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                values = parse_qs(body.decode("latin-1")).get("_method", [""])
                if values[0].upper() in OVERRIDABLE:
                    environ["REQUEST_METHOD"] = values[0].upper()
        return self.app(environ, start_response)


def wants_json() -> bool:
    """API clients say `Accept: application/json`; browsers and htmx prefer HTML."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


def is_htmx() -> bool:
    """An htmx request for a fragment (a page restored from history wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def json_body() -> dict:
    """The request's JSON object, {} when it sent none; JSON that is not an object (a list, a
    string) is refused, so a field read from it can never be a method call on a list."""
    body = request.get_json(silent=True)
    if body is None:
        # No body (or `null`) is no fields; a body that does not parse is refused, so a
        # request cut off halfway is never taken for one that chose every default.
        if request.get_data(cache=True).strip() not in (b"", b"null"):
            raise Invalid("The body is not valid JSON: send the fields as a JSON object.")
        return {}
    if not isinstance(body, dict):
        raise Invalid("Send the fields as a JSON object.")
    return body


def form_value(name: str, default: str = "") -> str:
    if request.is_json:
        value = json_body().get(name, default)
        # null counts as missing; numbers and booleans are accepted as their text.
        if value is None:
            return default
        if isinstance(value, list | dict):
            raise Invalid(f"Send {name} as one value, not a list or an object.", field=name)
        return value if isinstance(value, str) else json.dumps(value)
    return request.form.get(name, default)


def raw_value(name: str):
    """A field as it was sent, unchecked (from JSON it may be anything, or None): for a verb
    that must see who asks before it judges what they sent."""
    if request.is_json:
        body = request.get_json(silent=True)
        return body.get(name) if isinstance(body, dict) else None
    return request.form.get(name)


def form_ids(name: str = "user_ids") -> list[int]:
    """A repeatable id field (`user_ids=1&user_ids=2`, or a JSON list); junk is refused."""
    if request.is_json:
        raw = json_body().get(name, [])
        raw = raw if isinstance(raw, list) else [raw]
    else:
        raw = request.form.getlist(name)
    ids = []
    for value in raw:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
            if not value.isdigit():
                raise Invalid("Choose people from the list.", field=name)
            value = int(value)
        # bool is an int in Python, but true is not a user id.
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("Choose people from the list.", field=name)
        ids.append(value)
    return ids


def query_int(name: str) -> int | None:
    """A non-negative id from the query string (kept within MAX_ID), else None."""
    value = request.args.get(name, "")
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        return None
    return min(int(value), MAX_ID)


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: an id past what the database holds is a 404 (PostgreSQL
    refused such a number with an error, a 500)."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def page(template: str, block: str | None = None, status: int = 200, **context):
    """The full page, or only `block` of it when htmx asks for a fragment."""
    if block and is_htmx():
        return make_response(render_block(template, block, **context), status)
    return make_response(render_template(template, **context), status)


def see_other(location: str):
    """Post/Redirect/Get: 303 so the browser follows with a GET."""
    return redirect(location, code=303)


def safe_next(target: str | None, fallback: str) -> str:
    """Only same-site paths, so a crafted ?next= cannot send users elsewhere."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


def json_error(message: str, status: int, field: str | None = None):
    body = {"error": message}
    if field:
        body["field"] = field
    return jsonify(body), status


def error_page(error: ServiceError):
    """A refusal as JSON for API clients, else as the error page."""
    if wants_json():
        return json_error(error.message, error.status, error.field)
    return render_template("error.html", message=error.message, status=error.status), error.status


class SecureCookies:
    """WSGI middleware: every cookie set over https gets `Secure`.

    Flask and Flask-Login decide `Secure` from fixed settings (SESSION_COOKIE_SECURE,
    REMEMBER_COOKIE_SECURE) read when the cookie is written, so one server reached both over
    plain http on the machine and over https through its proxy cannot say it per request; the
    request's scheme (after ProxyFix) can.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def secure_start(status, headers, exc_info=None):
            headers = [
                (name, value + "; Secure")
                if name.lower() == "set-cookie" and "; secure" not in value.lower()
                else (name, value)
                for name, value in headers
            ]
            return start_response(status, headers, exc_info)

        return self.app(environ, secure_start)


def _too_many() -> str:
    from chipper.limits import retry_after

    seconds = retry_after()
    when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    return f"That was too many in a short time. Try again in {when}."


def init_app(app: Flask) -> None:
    app.request_class = Request
    app.wsgi_app = SecureCookies(MethodOverride(app.wsgi_app))
    if proxies := app.config.get("TRUSTED_PROXIES", 0):
        # Behind a reverse proxy: believe its X-Forwarded-For/-Proto/-Host, so the client's
        # address, https and the public host are the real ones.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    @app.after_request
    def headers(response):
        response.vary.add("HX-Request")
        response.vary.add("Accept")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            # Pages hold private conversations: never store them in shared caches.
            response.headers.setdefault("Cache-Control", "private, no-cache")
        return response

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError):
        response = make_response(error_page(error))
        if is_htmx():
            # The page's script shows why in its notice (an edit past its time, say).
            response.headers["X-Chipper-Reason"] = quote(error.message)
        return response

    def http_error(error):
        from flask_wtf.csrf import CSRFError

        message = error.description
        if isinstance(error, CSRFError):
            message = "Your form expired or came from another site. Reload the page and try again."
        if error.code == 429:
            message = _too_many()
        # Keep headers the error carries, such as Allow on a 405.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        if wants_json():
            body, status = json_error(message, error.code)
            return body, status, headers
        if is_htmx() and error.code == 429:
            # A small piece for the page's error slot, not a whole page.
            fragment = render_template("_too_many.html", message=message)
            return fragment, error.code, headers
        return (
            render_template("error.html", message=message, status=error.code),
            error.code,
            headers,
        )

    for code in (400, 403, 404, 405, 413, 415, 429):
        app.register_error_handler(code, http_error)
