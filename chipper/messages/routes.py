"""Sending, editing, reacting to and deleting messages."""

import contextlib

from flask import jsonify, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from chipper.conversations.views import conversation_page
from chipper.limits import configured, limiter, per_user
from chipper.media import too_large_message
from chipper.messages import bp
from chipper.models import Conversation
from chipper.services import Conflict, Invalid, NotFound, ServiceError, TooLarge, drafts
from chipper.services.conversations import conversation_for, membership_for
from chipper.services.messages import (
    Upload,
    delete_message,
    edit_message,
    editable,
    message_for,
    replied_to,
    send_message,
)
from chipper.services.reactions import PALETTE, toggle_reaction
from chipper.web import (
    error_page,
    form_value,
    is_htmx,
    json_error,
    page,
    see_other,
    wants_json,
)

# The quick choices every message's menu offers.
bp.add_app_template_global(PALETTE, "reaction_palette")


@bp.before_request
@login_required
def require_login():
    """Every message URL needs a signed-in user."""


@bp.post("/conversations/<int:conversation_id>/messages")
@limiter.limit(configured("LIMIT_SEND"), key_func=per_user)
@limiter.limit(
    configured("LIMIT_UPLOAD"),
    key_func=per_user,
    scope="upload",
    exempt_when=lambda: not request.files,
)
def create(conversation_id: int):
    # Sending needs the member ids only, not every participant and user.
    membership = membership_for(current_user, conversation_id)
    conversation = membership.conversation
    body = form_value("body")
    # The composer's hidden field, or an API client's header.
    key = form_value("client_key") or request.headers.get("Idempotency-Key", "").strip()
    try:
        message = send_message(
            current_user,
            membership,
            body,
            uploaded_file(),
            client_key=key,
            reply_to=form_value("reply_to") or None,
        )
    except ServiceError as error:
        return refused(conversation, body, error, form_value("reply_to"))
    if wants_json():
        # A repeat gets the first answer again, marked as one.
        headers = {"Idempotent-Replayed": "true"} if message.replayed else {}
        return jsonify(message.to_json()), 201, headers
    if is_htmx():
        return _sent(message, conversation), 201
    if form_value("from_draft"):
        drafts.discard(current_user, conversation_id)
    return see_other(
        url_for("conversations.show", conversation_id=conversation_id, _anchor=f"m{message.id}")
    )


def _sent(message, conversation) -> str:
    """The new message for the timeline, and an empty composer swapped in out of band."""
    return render_template(
        "messages/_created.html",
        message=message,
        conversation=conversation,
        viewer_id=current_user.id,
        composer={"body": "", "error": None},
    )


def uploaded_file() -> Upload | None:
    """The file chosen in the composer, if any. Its file fields (picker, camera, microphone)
    all send a part, empty when nothing was chosen there."""
    chosen = [f for f in request.files.getlist("file") if f.filename or f.stream.read(1)]
    if len(chosen) > 1:
        raise Invalid("Attach one file at a time.", field="file")
    if not chosen:
        return None
    chosen[0].stream.seek(0)
    return Upload(chosen[0].stream, chosen[0].filename)


def refused(conversation: Conversation, body: str, error: ServiceError, reply_to: str = ""):
    """The composer back with the reason, keeping the text (a browser cannot refill a file
    field). API clients get the status that fits: 422 text, 413 size, 415 kind, 400 damaged."""
    if wants_json():
        return json_error(error.message, error.status, error.field)
    composer = {"body": body, "error": error.message}
    if reply_to and error.field != "reply_to":
        # Still answering the same message once the text is put right.
        with contextlib.suppress(ServiceError):
            composer["reply_to"] = replied_to(conversation, reply_to)
    if is_htmx():
        html = render_template(
            "messages/_composer.html", conversation=conversation, composer=composer
        )
        # 422 is the refusal the page script swaps in place (see chipper.js).
        return html, 422, {"HX-Retarget": "#composer", "HX-Reswap": "outerHTML"}
    # Without JavaScript: back to the conversation (Post/Redirect/Get, so a reload cannot post
    # it again), whose composer shows the kept text and the reason (services.drafts).
    if drafts.keep(current_user, conversation.id, body, error.message):
        return see_other(
            url_for(
                "conversations.show",
                conversation_id=conversation.id,
                refused=1,
                # The page's composer answers the same message again (views.composer_for).
                reply_to=composer["reply_to"].id if "reply_to" in composer else None,
                _anchor="composer",
            )
        )
    return conversation_page(conversation.id, None, error.status, composer=composer)


@bp.errorhandler(413)
def too_large(error):
    """A body over MAX_CONTENT_LENGTH is refused before it is read (before the CSRF check
    too): say why, in the composer when the sender is in the conversation."""
    refusal = TooLarge(too_large_message(), field="file")
    if request.endpoint != "messages.create" or wants_json() or not current_user.is_authenticated:
        return error_page(refusal)
    try:
        conversation = conversation_for(
            current_user, request.view_args["conversation_id"], members=False
        )
    except NotFound as missing:
        return error_page(missing)
    return refused(conversation, "", refusal)


def _answer(message):
    """One message as the caller wants it: JSON, its list item for htmx, else its place in
    the conversation (303)."""
    if wants_json():
        return jsonify(message.to_json())
    if is_htmx():
        return render_template("messages/_message.html", message=message, viewer_id=current_user.id)
    return _back_to(message)


def _back_to(message):
    return see_other(
        url_for(
            "conversations.show", conversation_id=message.conversation_id, _anchor=f"m{message.id}"
        )
    )


@bp.get("/messages/<int:message_id>")
def show(message_id: int):
    """One message: its JSON, its list item for htmx (an edit cancelled), else its place in
    the conversation."""
    message, _ = message_for(current_user, message_id)
    return _answer(message)


@bp.get("/messages/<int:message_id>/edit")
def edit(message_id: int):
    """The edit form: in place of the message for htmx, a small page without JavaScript."""
    message = editable(current_user, message_id)
    return _edit_form(message, message.body, None, 200)


def _edit_form(message, body: str, error: str | None, status: int):
    context = {"message": message, "body": body, "error": error}
    if is_htmx():
        response = make_response(render_template("messages/_editing.html", **context), status)
        # A refusal goes where the form is (the page's script swaps 422 answers in place).
        response.headers.update({"HX-Retarget": f"#m{message.id}", "HX-Reswap": "outerHTML"})
        return response
    return page("messages/edit.html", status=status, **context)


@bp.patch("/messages/<int:message_id>")
def update(message_id: int):
    editable(current_user, message_id)  # who may, before what they sent is read
    body = form_value("body")
    try:
        message = edit_message(current_user, message_id, body)
    except (Invalid, Conflict) as error:
        if wants_json() or error.field != "body":
            raise
        # The form again with the reason, keeping what was typed.
        message, _ = message_for(current_user, message_id)
        return _edit_form(message, body, error.message, error.status)
    return _answer(message)


@bp.delete("/messages/<int:message_id>")
def delete(message_id: int):
    message = delete_message(current_user, message_id)
    return _answer(message)


@bp.post("/messages/<int:message_id>/reactions")
@limiter.limit(configured("LIMIT_SEND"), key_func=per_user)
def react(message_id: int):
    """Gives or takes back the reader's reaction (`emoji`)."""
    message_for(current_user, message_id)  # who may, before what they sent is read
    message = toggle_reaction(current_user, message_id, form_value("emoji"))
    return _answer(message)


@bp.get("/messages/<int:message_id>/reactions")
def reactions(message_id: int):
    """Who reacted with what (the list a pointer's hover shows), and a form for any emoji."""
    message, conversation = message_for(current_user, message_id)
    if wants_json():
        return jsonify(message.to_json()["reactions"])
    return page(
        "messages/reactions.html", message=message, conversation=conversation, palette=PALETTE
    )
