"""Sending and deleting messages."""

from flask import jsonify, render_template, url_for
from flask_login import current_user, login_required

from chipper.conversations.views import conversation_page
from chipper.messages import bp
from chipper.services import Invalid
from chipper.services.conversations import conversation_for
from chipper.services.messages import delete_message, send_message
from chipper.web import form_value, is_htmx, json_error, see_other, wants_json


@bp.before_request
@login_required
def require_login():
    """Every message URL needs a signed-in user."""


@bp.post("/conversations/<int:conversation_id>/messages")
def create(conversation_id: int):
    # Sending needs the member ids only, not every participant and user.
    conversation = conversation_for(current_user, conversation_id, members=False)
    body = form_value("body")
    try:
        message = send_message(current_user, conversation, body)
    except Invalid as error:
        if wants_json():
            return json_error(error.message, 422, error.field)
        if is_htmx():
            # Put the refused text back in the composer with the reason next to it.
            html = render_template(
                "messages/_composer.html",
                conversation=conversation,
                composer={"body": body, "error": error.message},
            )
            return html, 422, {"HX-Retarget": "#composer", "HX-Reswap": "outerHTML"}
        return conversation_page(
            conversation_id, None, 422, composer={"body": body, "error": error.message}
        )
    if wants_json():
        return jsonify(message.to_json()), 201
    if is_htmx():
        # The new message for the timeline, and an empty composer swapped in out of band.
        return render_template(
            "messages/_created.html",
            message=message,
            conversation=conversation,
            viewer_id=current_user.id,
            composer={"body": "", "error": None},
        ), 201
    return see_other(
        url_for("conversations.show", conversation_id=conversation_id, _anchor=f"m{message.id}")
    )


@bp.delete("/messages/<int:message_id>")
def delete(message_id: int):
    message = delete_message(current_user, message_id)
    if wants_json():
        return jsonify(message.to_json())
    if is_htmx():
        return render_template("messages/_message.html", message=message, viewer_id=current_user.id)
    return see_other(
        url_for(
            "conversations.show", conversation_id=message.conversation_id, _anchor=f"m{message.id}"
        )
    )
