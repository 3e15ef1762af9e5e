"""GET /search: your messages that match, across your conversations or within one."""

from flask import jsonify, request
from flask_login import current_user, login_required

from chipper.conversations.views import htmx_target
from chipper.search import bp
from chipper.services import NotFound
from chipper.services import conversations as conversations_svc
from chipper.services import search as svc
from chipper.web import page, wants_json


@bp.get("/search")
@login_required
def index():
    text = request.args.get("q", "").strip()
    within = request.args.get("conversation_id", "").strip()
    if within and not within.isdigit():
        raise NotFound("Conversation not found.")
    conversation_id = int(within) if within else None
    results = svc.search(current_user, text, conversation_id, request.args.get("after"))
    if wants_json():
        return jsonify(
            results=[
                {
                    "message": hit.message.to_json(),
                    "conversation_id": hit.message.conversation_id,
                    "snippet": str(hit.snippet),
                }
                for hit in results.hits
            ],
            next=results.next,
        )
    context = {
        "q": text,
        "results": results,
        "within": results.within,
        "open_id": "search",
    }
    if request.args.get("after") and htmx_target() == "more-results":
        return page("search/index.html", "hits", **context)
    if htmx_target() == "conversation-pane":
        return page("search/index.html", "pane", pane_only=True, **context)
    summaries = conversations_svc.list_conversations(current_user)
    return page("search/index.html", None, summaries=summaries, **context)
