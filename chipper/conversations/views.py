"""The conversation page and JSON shapes, shared by the conversation and message routes."""

import contextlib
import re
from urllib.parse import urlsplit

from flask import jsonify, request
from flask_login import current_user

from chipper.models import Conversation, Message, User
from chipper.services import ServiceError, drafts, receipts
from chipper.services import conversations as svc
from chipper.services.accounts import search_users
from chipper.services.calls import live_call
from chipper.services.conversations import ConversationSummary
from chipper.services.messages import page_around, page_of_messages, replied_to
from chipper.services.push import is_muted
from chipper.web import is_htmx, page, wants_json


def conversation_json(
    conversation: Conversation,
    viewer: User,
    last_message: Message | None = None,
    unread_count: int = 0,
) -> dict:
    return {
        "id": conversation.id,
        "type": conversation.type,
        "name": conversation.name,
        "title": conversation.title_for(viewer),
        "created_by": conversation.created_by,
        "participants": [u.to_json() for u in conversation.members()],
        "last_message": last_message.to_json() if last_message else None,
        "unread_count": unread_count,
    }


def summary_json(summary: ConversationSummary, viewer: User) -> dict:
    shown = conversation_json(
        summary.conversation, viewer, summary.last_message, summary.unread_count
    )
    return {**shown, "mentioned": summary.mentioned}


def htmx_target() -> str | None:
    """The id of the element an htmx request will swap (None for a plain request)."""
    return request.headers.get("HX-Target") if is_htmx() else None


def open_conversation_id() -> int | None:
    """The conversation open beside the list in the page that asks (its live refresh)."""
    path = urlsplit(request.headers.get("HX-Current-URL", "")).path
    match = re.match(r"/conversations/(\d+)(?:/|$)", path)
    return int(match.group(1)) if match else None


def list_rows():
    """The conversation list's rows, for its live refresh."""
    return page(
        "conversations/_conversation_rows.html",
        summaries=svc.list_conversations(current_user),
        open_id=open_conversation_id(),
    )


def messaging_page(template: str, conversation: Conversation, status: int, **context):
    """A page in the two-pane shell: only its pane when opened from the list (htmx), else the
    whole page with the conversation list beside it."""
    context.update(conversation=conversation, open_id=conversation.id)
    if htmx_target() == "conversation-pane":
        return page(template, "pane", status, pane_only=True, **context)
    return page(template, None, status, summaries=svc.list_conversations(current_user), **context)


def details_context(conversation: Conversation, errors: dict | None = None) -> dict:
    candidates = (
        search_users("", exclude_ids={p.user_id for p in conversation.participants})
        if conversation.is_group
        else []
    )
    return {
        "candidates": candidates,
        "muted": is_muted(current_user, conversation),
        "errors": errors or {},
    }


def details_page(
    conversation: Conversation,
    status: int = 200,
    errors: dict | None = None,
    fragment: bool = False,
):
    """The details: the panel's fragment (its refresh, the answer to its forms) or the page."""
    context = details_context(conversation, errors)
    if fragment or htmx_target() == "details":
        return page(
            "conversations/_details.html", None, status, conversation=conversation, **context
        )
    return messaging_page("conversations/details.html", conversation, status, **context)


def conversation_page(
    conversation_id: int,
    before: int | None,
    status: int = 200,
    *,
    around: int | None = None,
    **extra,
):
    """The conversation page (or its older-messages fragment, or JSON) for the signed-in user:
    the newest messages, those `before` a message, or those `around` one (a reply's quote
    opens its original there)."""
    conversation = svc.conversation_for(current_user, conversation_id)
    if htmx_target() == "reply-slot":
        # What the composer answers: "Reply" on a message, or nothing (the reply cancelled).
        composer = composer_for(conversation)
        return page("messages/_reply_slot.html", conversation=conversation, composer=composer)
    latest = before is None and around is None
    if latest and htmx_target() == "conversation-header":
        # The header refreshing itself after a rename or a member change.
        return header_fragment(conversation)
    has_newer = False
    if around is not None:
        messages, has_more, has_newer = page_around(conversation, around)
    else:
        messages, has_more = page_of_messages(conversation, before)
    # Where the reader left off: the line "New messages" goes above the first one unread.
    first_unread = _first_unread(conversation, messages) if latest else None
    if latest:
        svc.mark_read(current_user, conversation, messages[-1].created_at if messages else None)
    if wants_json():
        return jsonify(
            conversation=conversation_json(conversation, current_user),
            messages=[m.to_json() for m in messages],
            has_more=has_more,
            has_newer=has_newer,
        )
    context = {
        "messages": messages,
        "has_more": has_more,
        "has_newer": has_newer,
        "first_unread": first_unread,
        "before": before,
        "around": around,
        "composer": composer_for(conversation) if latest else EMPTY_COMPOSER,
        "live_call": live_call(conversation) if latest else None,
        "receipt": receipts.receipt_for(current_user, conversation) if latest else None,
        **details_context(conversation),
    }
    context.update(extra)
    if before is not None and is_htmx():
        return page(
            "conversations/show.html", "message_list", status, conversation=conversation, **context
        )
    return messaging_page("conversations/show.html", conversation, status, **context)


EMPTY_COMPOSER = {"body": "", "error": None}


def _first_unread(conversation: Conversation, messages: list[Message]) -> int | None:
    """The id of the first message on the page the reader had not read: someone else's, not
    deleted, newer than their last read time (before this visit marks it read)."""
    me = current_user.id
    read_at = next((p.last_read_at for p in conversation.participants if p.user_id == me), None)
    for message in messages:
        unread = read_at is None or message.created_at > read_at
        if unread and message.user_id != me and not message.is_deleted:
            return message.id
    return None


def composer_for(conversation: Conversation) -> dict:
    """The composer as the page opens it: with a refused send's text, or answering the message
    named by ?reply_to= (one of this conversation's; anything else opens a plain one)."""
    composer = carried_composer(conversation.id)
    reply_to = request.args.get("reply_to", "")
    if reply_to.isdigit():
        with contextlib.suppress(ServiceError):
            composer = {**composer, "reply_to": replied_to(conversation, reply_to)}
    return composer


def carried_composer(conversation_id: int) -> dict:
    """The composer as a send refused without JavaScript left it (messages.routes.refused):
    its text and reason, on the page that refusal redirected to."""
    if not request.args.get("refused"):
        return EMPTY_COMPOSER
    kept = drafts.kept(current_user, conversation_id)
    if kept is None:
        return EMPTY_COMPOSER
    return {"body": kept.body, "error": kept.error, "from_draft": True}


def header_fragment(conversation: Conversation):
    """The conversation's header: its title, presence and buttons."""
    return page("conversations/show.html", "conversation_header", conversation=conversation)
