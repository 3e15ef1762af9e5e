"""Calls: starting, answering, declining, hanging up, the call page and signaling.

Browsers without JavaScript carry no media, but they can still answer, decline and end calls
with the call page's forms (303 back to a page after each).
"""

from flask import current_app, jsonify, render_template, request, url_for
from flask_login import current_user, login_required

from chipper.calls import bp
from chipper.limits import configured, limiter, per_user
from chipper.models import Call, iso, utcnow
from chipper.services import calls
from chipper.services.conversations import conversation_for
from chipper.web import form_value, is_htmx, raw_value, see_other, wants_json


@bp.before_request
@login_required
def require_login():
    """Every call URL needs a signed-in user."""


@bp.post("/conversations/<int:conversation_id>/calls")
@limiter.limit(configured("LIMIT_CALL_START"), key_func=per_user)
def create(conversation_id: int):
    conversation = conversation_for(current_user, conversation_id, members=False)
    # API clients are told a call is already live (409); browsers join it.
    call, new = calls.start_call(
        current_user, conversation, form_value("type"), join_live=not wants_json()
    )
    return answered(call, 201 if new else 200)


@bp.post("/calls/<int:call_id>/answer")
def answer(call_id: int):
    return answered(calls.answer(current_user, call_id))


@bp.post("/calls/<int:call_id>/decline")
def decline(call_id: int):
    return answered(calls.decline(current_user, call_id))


@bp.post("/calls/<int:call_id>/end")
def end(call_id: int):
    return answered(calls.end(current_user, call_id))


@bp.get("/calls/<int:call_id>")
def show(call_id: int):
    call, conversation = calls.call_for(current_user, call_id)
    if wants_json():
        return jsonify(call=call.to_json(), ice_servers=current_app.config["ICE_SERVERS"])
    return render_template(
        "calls/show.html",
        call=call,
        conversation_id=conversation.id,
        ice_servers=current_app.config["ICE_SERVERS"],
        # The page's clock may be off: the call timer counts from the server's time.
        now=iso(utcnow()),
    )


@bp.get("/calls/ringing")
def ringing():
    """The calls ringing for the viewer now: the boxes every page shows. js/calls/ringing.js
    asks for them when the stream says one rings (each carries the viewer's CSRF token)."""
    ringing_calls = calls.ringing_for(current_user)
    if wants_json():
        return jsonify(calls=[call.to_json() for call in ringing_calls])
    response = current_app.make_response(
        render_template("calls/_ringing_list.html", calls=ringing_calls)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# The verbs check who may act before what was sent: an outsider gets 404 whatever the body.


@bp.post("/calls/<int:call_id>/screen")
def screen(call_id: int):
    return answered(calls.share_screen(current_user, call_id, raw_value("sharing")))


@bp.post("/calls/<int:call_id>/signal")
@limiter.limit(configured("LIMIT_CALL_SIGNAL"), key_func=per_user)
def signal(call_id: int):
    calls.signal(current_user, call_id, request.get_json(silent=True))
    return "", 204


def answered(call: Call, status: int = 200):
    """The call as JSON, its partial for htmx, else the call page while it is live and the
    conversation once it is over (Post/Redirect/Get)."""
    if wants_json():
        return jsonify(call.to_json()), status
    if is_htmx():
        return render_template("calls/_call.html", call=call, viewer_id=current_user.id), status
    if call.is_live and current_user.id in call.joined_ids():
        return see_other(url_for("calls.show", call_id=call.id))
    return see_other(url_for("conversations.show", conversation_id=call.conversation_id))
