"""The conversation page and JSON shapes, shared by the conversation and message routes."""

from flask import jsonify, request
from flask_login import current_user

from chipper.models import Conversation, Message, User
from chipper.services import conversations as svc
from chipper.services.accounts import search_users
from chipper.services.calls import live_call
from chipper.services.conversations import ConversationSummary
from chipper.services.messages import page_of_messages
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
    return conversation_json(
        summary.conversation, viewer, summary.last_message, summary.unread_count
    )


def conversation_page(conversation_id: int, before: int | None, status: int = 200, **extra):
    """The conversation page (or its older-messages fragment, or JSON) for the signed-in user."""
    conversation = svc.conversation_for(current_user, conversation_id)
    if before is None and is_htmx() and request.headers.get("HX-Target") == "conversation-header":
        # The header refreshing itself after a rename or a member change.
        return header_fragment(conversation)
    messages, has_more = page_of_messages(conversation, before)
    if before is None:
        svc.mark_read(current_user, conversation, messages[-1].created_at if messages else None)
    if wants_json():
        return jsonify(
            conversation=conversation_json(conversation, current_user),
            messages=[m.to_json() for m in messages],
            has_more=has_more,
        )
    candidates = (
        search_users("", exclude_ids={p.user_id for p in conversation.participants})
        if conversation.is_group
        else []
    )
    context = {
        "conversation": conversation,
        "messages": messages,
        "has_more": has_more,
        "before": before,
        "candidates": candidates,
        "composer": {"body": "", "error": None},
        "live_call": live_call(conversation) if before is None else None,
        "muted": is_muted(current_user, conversation),
        "errors": {},
    }
    context.update(extra)
    block = "message_list" if before is not None else None
    return page("conversations/show.html", block, status, **context)


def header_fragment(conversation: Conversation, status: int = 200, errors: dict | None = None):
    """The conversation's header: title, members and the group forms."""
    candidates = search_users("", exclude_ids={p.user_id for p in conversation.participants})
    return page(
        "conversations/show.html",
        "conversation_header",
        status,
        conversation=conversation,
        candidates=candidates,
        muted=is_muted(current_user, conversation),
        errors=errors or {},
    )
