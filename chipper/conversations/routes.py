"""Conversation list, creation, the conversation page, renaming and membership."""

from flask import jsonify, request, url_for
from flask_login import current_user, login_required

from chipper.conversations import bp
from chipper.conversations.views import (
    conversation_json,
    conversation_page,
    details_page,
    list_rows,
    summary_json,
)
from chipper.limits import configured, limiter, per_user
from chipper.services import Invalid, push, receipts
from chipper.services import conversations as svc
from chipper.services.accounts import search_users, users_by_ids
from chipper.web import (
    form_ids,
    form_value,
    is_htmx,
    json_error,
    page,
    query_int,
    see_other,
    wants_json,
)


@bp.before_request
@login_required
def require_login():
    """Every conversation URL needs a signed-in user."""


@bp.get("/conversations")
def index():
    if wants_json():
        summaries = svc.list_conversations(current_user, in_full=True)
        return jsonify(conversations=[summary_json(s, current_user) for s in summaries])
    summaries = svc.list_conversations(current_user)
    if is_htmx():
        return list_rows()
    return page("conversations/index.html", summaries=summaries, open_id=None)


def _new_page(
    status: int = 200,
    errors: dict | None = None,
    values: dict | None = None,
    q: str | None = None,
):
    values = values or {}
    q = request.args.get("q", "") if q is None else q
    chosen = users_by_ids(values.get("user_ids") or _ticked_ids(request.args))
    found = search_users(q, exclude_ids={current_user.id, *(u.id for u in chosen)})
    return page(
        "conversations/new.html",
        "user_results",
        status,
        q=q,
        chosen=chosen,
        found=found,
        errors=errors or {},
        values=values,
    )


def _ticked_ids(values) -> list[int]:
    """Ids already ticked in the picker, so a new search or a refused form keeps them."""
    return [int(v) for v in values.getlist("user_ids") if v.isdigit()]


@bp.get("/conversations/new")
def new():
    if wants_json():
        found = search_users(request.args.get("q", ""), exclude_ids={current_user.id})
        return jsonify(users=[u.to_json() for u in found])
    return _new_page()


@bp.post("/conversations/new")
def search_people():
    """The form's Search button: the page again with the people found, and every choice made
    so far (the kind, the name, the people ticked) still there."""
    values = {"type": form_value("type", "private"), "name": form_value("name")}
    values["user_ids"] = _ticked_ids(request.form)
    return _new_page(values=values, q=form_value("q"))


@bp.post("/conversations")
def create():
    kind = form_value("type", "private")
    try:
        conversation, created = svc.start_conversation(
            current_user, kind, form_value("name"), form_ids()
        )
    except Invalid as error:
        if wants_json():
            return json_error(error.message, 422, error.field)
        values = {"type": kind, "name": form_value("name"), "user_ids": _ticked_ids(request.form)}
        return _new_page(422, {error.field: error.message}, values)
    if wants_json():
        return jsonify(conversation_json(conversation, current_user)), 201 if created else 200
    return see_other(url_for("conversations.show", conversation_id=conversation.id))


@bp.get("/conversations/unread")
def unread():
    """The navigation's unread badge (refreshed live), or {"unread": n}."""
    count = svc.total_unread(current_user)
    if wants_json():
        return jsonify(unread=count)
    return page("conversations/_unread_count.html", unread=count)


@bp.post("/conversations/<int:conversation_id>/read")
def read(conversation_id: int):
    """Marks what the page shows as read (sent when a message arrives in an open tab)."""
    conversation = svc.conversation_for(current_user, conversation_id)
    svc.mark_read(current_user, conversation, svc.newest_message_time(conversation))
    if wants_json() or is_htmx():
        return "", 204
    return see_other(url_for("conversations.show", conversation_id=conversation_id))


@bp.get("/conversations/<int:conversation_id>/seen")
def seen(conversation_id: int):
    """Who has read the reader's latest message ("Seen"), while it is the latest."""
    conversation = svc.conversation_for(current_user, conversation_id)
    receipt = receipts.receipt_for(current_user, conversation)
    if wants_json():
        if receipt is None:
            return jsonify(message_id=None, seen_by=[])
        return jsonify(message_id=receipt.message_id, seen_by=[u.id for u in receipt.readers])
    if is_htmx():
        return page("conversations/_seen_text.html", conversation=conversation, receipt=receipt)
    return see_other(url_for("conversations.show", conversation_id=conversation_id))


@bp.post("/conversations/<int:conversation_id>/typing")
@limiter.limit(configured("LIMIT_TYPING"), key_func=per_user)
def typing(conversation_id: int):
    svc.signal_typing(current_user, svc.conversation_for(current_user, conversation_id))
    return "", 204


MUTED = {"on": True, "true": True, "off": False, "false": False}


@bp.post("/conversations/<int:conversation_id>/mute")
def mute(conversation_id: int):
    """Turns the conversation's message notifications off (`muted=on`) or on again."""
    conversation = svc.conversation_for(current_user, conversation_id, members=False)
    muted = MUTED.get(form_value("muted").strip().lower())
    if muted is None:
        raise Invalid("Say whether to mute the conversation: on or off.", field="muted")
    muted = push.set_muted(current_user, conversation, muted)
    if wants_json():
        return jsonify(muted=muted)
    if is_htmx():
        return page("conversations/_mute.html", conversation=conversation, muted=muted)
    return see_other(url_for("conversations.details", conversation_id=conversation_id))


@bp.get("/conversations/<int:conversation_id>")
def show(conversation_id: int):
    return conversation_page(conversation_id, None, around=query_int("around"))


@bp.get("/conversations/<int:conversation_id>/messages")
def messages(conversation_id: int):
    return conversation_page(conversation_id, query_int("before"))


@bp.get("/conversations/<int:conversation_id>/details")
def details(conversation_id: int):
    """Members, mute, and a group's rename, add people and leave: a page or the side panel."""
    conversation = svc.conversation_for(current_user, conversation_id)
    if wants_json():
        return jsonify(conversation_json(conversation, current_user))
    return details_page(conversation)


def _members_changed(conversation_id: int, status: int = 200, errors: dict | None = None):
    """After rename or membership changes: JSON, the details panel, or back to the page."""
    if wants_json():
        conversation = svc.conversation_for(current_user, conversation_id)
        return jsonify(conversation_json(conversation, current_user)), status
    if is_htmx():
        conversation = svc.conversation_for(current_user, conversation_id)
        return details_page(conversation, status, errors, fragment=True)
    # Without JavaScript these forms are on the details page: back there.
    return see_other(url_for("conversations.details", conversation_id=conversation_id))


def _refused(conversation_id: int, error: Invalid):
    if wants_json():
        return json_error(error.message, 422, error.field)
    if is_htmx():
        return _members_changed(conversation_id, 422, {error.field: error.message})
    conversation = svc.conversation_for(current_user, conversation_id)
    return details_page(conversation, 422, {error.field: error.message})


@bp.patch("/conversations/<int:conversation_id>")
def update(conversation_id: int):
    conversation = svc.conversation_for(current_user, conversation_id)
    try:
        svc.rename_conversation(current_user, conversation, form_value("name"))
    except Invalid as error:
        return _refused(conversation_id, error)
    return _members_changed(conversation_id)


@bp.post("/conversations/<int:conversation_id>/participants")
def add_participants(conversation_id: int):
    conversation = svc.conversation_for(current_user, conversation_id)
    try:
        svc.add_participants(current_user, conversation, form_ids())
    except Invalid as error:
        return _refused(conversation_id, error)
    return _members_changed(conversation_id, 201 if wants_json() else 200)


@bp.delete("/conversations/<int:conversation_id>/participants/<int:user_id>")
def remove_participant(conversation_id: int, user_id: int):
    conversation = svc.conversation_for(current_user, conversation_id)
    svc.remove_participant(current_user, conversation, user_id)
    if user_id != current_user.id:
        return _members_changed(conversation_id)
    # You left: the conversation is no longer yours to see.
    if wants_json():
        return "", 204
    if is_htmx():
        return "", 200, {"HX-Redirect": url_for("conversations.index")}
    return see_other(url_for("conversations.index"))
