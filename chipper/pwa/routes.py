"""The installable app: manifest, service worker, offline page and the share target."""

import json

from flask import Response, jsonify, make_response, render_template, request, session, url_for
from flask_login import current_user, login_required

from chipper.extensions import csrf
from chipper.messages.routes import uploaded_file
from chipper.pwa import bp
from chipper.pwa.shell import STYLESHEETS, THEME_COLOR, service_worker_source
from chipper.pwa.shell import manifest as app_manifest
from chipper.services import Invalid, ServiceError, shares
from chipper.services.conversations import list_conversations, membership_for
from chipper.web import form_value, is_htmx, json_error, page, see_other, wants_json


@bp.app_context_processor
def shell_colours():
    return {"theme_color": THEME_COLOR, "stylesheets": STYLESHEETS}


@bp.get("/manifest.webmanifest")
def manifest():
    response = Response(json.dumps(app_manifest(), indent=1), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker():
    # At the root, so its scope is the whole site. Browsers look for a new version at every
    # navigation; no-cache makes that check reach the server.
    response = Response(service_worker_source(), mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/offline")
def offline():
    # Precached by the service worker for whoever is signed in at the time: it must not show
    # anything of one person's (it does not extend base.html, which shows the account).
    response = make_response(render_template("pwa/offline.html"))
    response.headers["Cache-Control"] = "no-cache"
    return response


# The share target: the phone's share sheet posts here, then the person picks a conversation.


@bp.post("/share")
@csrf.exempt  # the share sheet cannot send our token; see receive_share
@login_required
def receive_share():
    """Holds what the share sheet sent and shows where it can go.

    Exempt from CSRF because the phone's share sheet posts it without our token. It sends
    nothing: it only keeps the file aside for the signed-in person (a cross-site form gets no
    session cookie, which is SameSite=Lax), and sending it is a second, protected POST.
    """
    try:
        held = shares.hold(
            form_value("title"), form_value("text"), form_value("url"), uploaded_file()
        )
    except ServiceError as error:
        if wants_json():
            return json_error(error.message, error.status, error.field)
        return share_page(status=error.status, error=error.message)
    shares.drop(session.get(SESSION_KEY))
    session[SESSION_KEY] = held
    if wants_json():
        return jsonify(share_json(held)), 201
    return see_other(url_for("pwa.share"))


@bp.get("/share")
@login_required
def share():
    if wants_json():
        return jsonify(share_json(session.get(SESSION_KEY)))
    return share_page()


@bp.post("/share/send")
@login_required
def send_share():
    held = session.get(SESSION_KEY)
    body = form_value("body")
    try:
        conversation_id = form_value("conversation_id")
        if not conversation_id.isdigit():
            raise Invalid("Choose a conversation to send it to.", field="conversation_id")
        membership = membership_for(current_user, int(conversation_id))
        message = shares.send(current_user, membership, body, held, uploaded_file())
    except ServiceError as error:
        if wants_json():
            return json_error(error.message, error.status, error.field)
        if error.field == "file" and held:
            # The held file is gone (sent elsewhere, or swept): start over.
            session.pop(SESSION_KEY, None)
            held = None
        return share_page(status=error.status, error=error.message, body=body, held=held)
    session.pop(SESSION_KEY, None)
    if wants_json():
        return jsonify(message.to_json()), 201
    return see_other(
        url_for(
            "conversations.show", conversation_id=message.conversation_id, _anchor=f"m{message.id}"
        )
    )


@bp.post("/share/cancel")
@login_required
def cancel_share():
    shares.drop(session.pop(SESSION_KEY, None))
    if wants_json():
        return "", 204
    return see_other(url_for("conversations.index"))


SESSION_KEY = "share"


def share_json(held: dict | None) -> dict:
    file = held.get("file") if held else None
    return {
        "body": held["body"] if held else "",
        "file": (
            {
                "kind": file["kind"],
                "name": file["original_name"],
                "size": file["size"],
                "content_type": file["content_type"],
            }
            if file
            else None
        ),
    }


def share_page(status: int = 200, error: str | None = None, body: str | None = None, held=None):
    held = held if held is not None else session.get(SESSION_KEY)
    summaries = list_conversations(current_user)
    return page(
        "pwa/share.html",
        status=status,
        share=share_json(held),
        body=body if body is not None else (held["body"] if held else ""),
        summaries=summaries,
        error=error,
    )


# Pages a device may keep for reading offline: the conversation list and a conversation's
# latest messages, as full pages. The service worker saves only pages marked so.
SAVED_ENDPOINTS = {"conversations.index", "conversations.show"}


@bp.after_app_request
def mark_offline_copy(response):
    if (
        request.method == "GET"
        and request.endpoint in SAVED_ENDPOINTS
        and not request.args
        and response.status_code == 200
        and response.mimetype == "text/html"
        and not is_htmx()
    ):
        response.headers["X-Offline-Copy"] = "save"
    return response
