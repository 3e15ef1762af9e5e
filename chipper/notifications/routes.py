"""The server's public key, and the browsers that take the signed-in user's notifications."""

from flask import current_app, jsonify, request, session
from flask_login import current_user

from chipper.notifications import bp
from chipper.push import NOT_SET_UP, SESSION_KEY
from chipper.services import Invalid, ServiceError
from chipper.services import push as svc
from chipper.web import json_error


@bp.before_request
def require_login():
    # JSON for everyone: only the page's script and API clients call these.
    if request.endpoint != "notifications.key" and not current_user.is_authenticated:
        return json_error("Log in first.", 401)


@bp.errorhandler(ServiceError)
def refused(error: ServiceError):
    return json_error(error.message, error.status, error.field)


@bp.get("/push/key")
def key():
    public_key = current_app.extensions["chipper.push"].public_key
    if not public_key:
        return json_error(NOT_SET_UP, 404)
    return jsonify(public_key=public_key)


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid("Send the subscription as JSON (PushSubscription.toJSON()).")
    return body


@bp.post("/push/subscriptions")
def subscribe():
    body = _body()
    keys = body.get("keys") if isinstance(body.get("keys"), dict) else {}
    subscription = svc.subscribe(
        current_user, body.get("endpoint"), keys.get("p256dh"), keys.get("auth")
    )
    session[SESSION_KEY] = subscription.id
    return jsonify(subscription.to_json()), 201


@bp.delete("/push/subscriptions")
def unsubscribe():
    forgotten = svc.unsubscribe(current_user, _body().get("endpoint"))
    if forgotten is not None and session.get(SESSION_KEY) == forgotten:
        session.pop(SESSION_KEY)
    return "", 204
