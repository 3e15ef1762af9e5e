"""The admin page: the server's accounts and its invite links. Anyone but an admin gets 404,
so the page does not tell that it exists."""

from flask import abort, current_app, jsonify, url_for
from flask_login import current_user, login_required

from chipper.admin import bp
from chipper.models import iso, utcnow
from chipper.services import Invalid, accounts, admin, invites, settings
from chipper.web import form_value, page, see_other, wants_json


@bp.before_request
@login_required
def require_admin():
    invites.require_admin(current_user)


def invite_link(token: str) -> str:
    if base := current_app.config.get("PUBLIC_URL"):
        return base + url_for("auth.register", invite=token)
    return url_for("auth.register", invite=token, _external=True)


def invite_json(invite) -> dict:
    return {
        "id": invite.id,
        "note": invite.note,
        "uses": invite.uses,
        "max_uses": invite.max_uses,
        "expires_at": iso(invite.expires_at),
        "revoked": invite.revoked_at is not None,
    }


def _page(status: int = 200, **context):
    context.setdefault("values", {"uses": 1, "days": 7})
    context.setdefault("errors", {})
    context.setdefault("setting_errors", {})
    people = accounts.directory()
    presence = current_app.extensions["chipper.realtime"].presence
    context.update(
        people=people,
        online=presence.online([person.id for person, _, _ in people]),
        settings=settings.current(),
        configured={name: settings.configured(name) for name in settings.SETTINGS},
        invites=invites.list_invites(),
        audit=admin.recent_audit(),
        now=utcnow(),
    )
    return page("admin/index.html", status=status, **context)


@bp.get("")
def index():
    if wants_json():
        return jsonify(
            invites=[invite_json(i) for i in invites.list_invites()], settings=settings.current()
        )
    return _page()


@bp.post("/settings")
def change_settings():
    values = {name: form_value(name) for name in settings.SETTINGS}
    try:
        now = settings.change(current_user, values)
    except Invalid as error:
        if wants_json():
            return jsonify(error=error.message, field=error.field), 422
        return _page(422, setting_errors={error.field: error.message}, tried=values)
    if wants_json():
        return jsonify(settings=now)
    return see_other(url_for("admin.index") + "#settings")


@bp.post("/invites")
def create_invite():
    values = {name: form_value(name) for name in ("uses", "days", "note")}
    try:
        made = invites.create_invite(current_user, **values)
    except Invalid as error:
        if wants_json():
            return jsonify(error=error.message, field=error.field), 422
        return _page(422, values=values, errors={error.field: error.message})
    link = invite_link(made.token)
    if wants_json():
        return jsonify(invite=invite_json(made.invite), url=link), 201
    # The link is shown this once: only its hash is kept.
    return _page(201, new_link=link)


@bp.post("/invites/<int:invite_id>/revoke")
def revoke_invite(invite_id: int):
    invite = invites.revoke_invite(current_user, invite_id)
    if wants_json():
        return jsonify(invite=invite_json(invite))
    return see_other(url_for("admin.index") + "#invites")


ACCOUNT_ACTIONS = {
    "deactivate": lambda actor, user_id: admin.deactivate(actor, user_id),
    "reactivate": lambda actor, user_id: admin.reactivate(actor, user_id),
    "make-admin": lambda actor, user_id: admin.set_admin(actor, user_id, True),
    "remove-admin": lambda actor, user_id: admin.set_admin(actor, user_id, False),
}


@bp.post("/users/<int:user_id>/<action>")
def account_action(user_id: int, action: str):
    if action not in ACCOUNT_ACTIONS:
        abort(404)
    user = ACCOUNT_ACTIONS[action](current_user, user_id)
    if wants_json():
        return jsonify(user={**user.to_json(), "is_admin": user.is_admin, "active": user.is_active})
    return see_other(url_for("admin.index") + "#people")
