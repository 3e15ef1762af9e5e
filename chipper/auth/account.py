"""The account page: change the password, choose whether others see when you have read,
see where the account is signed in, sign out everywhere else."""

from flask import jsonify, url_for
from flask_login import current_user, login_required

from chipper.auth import bp
from chipper.models import iso
from chipper.services import Invalid, accounts, sessions
from chipper.web import form_value, json_error, page, see_other, wants_json


def _page(status: int = 200, **context):
    context.setdefault("errors", {})
    context.setdefault("done", None)
    signed_in = sessions.active(current_user)
    return page("auth/account.html", status=status, signed_in=signed_in, **context)


@bp.get("/account")
@login_required
def account():
    if wants_json():
        listed = [
            {"id": s.id, "user_agent": s.user_agent, "created_at": iso(s.created_at)}
            for s in sessions.active(current_user)
        ]
        return jsonify(
            sessions=listed,
            current=current_user.session_id,
            read_receipts=current_user.read_receipts,
        )
    return _page()


@bp.post("/account/password")
@login_required
def change_password():
    try:
        ended = accounts.change_password(
            current_user, form_value("current_password"), form_value("new_password")
        )
    except Invalid as error:
        if wants_json():
            return json_error(error.message, 422, error.field)
        return _page(422, errors={error.field: error.message})
    if wants_json():
        return jsonify(ended_sessions=ended)
    return _page(done=f"Password changed. Signed out everywhere else ({ended}).")


@bp.post("/account/sign-out-others")
@login_required
def sign_out_others():
    ended = sessions.end_others(current_user)
    if wants_json():
        return jsonify(ended_sessions=ended)
    return see_other(url_for("auth.account", ended=ended))


@bp.post("/account/read-receipts")
@login_required
def read_receipts():
    """ "Send read receipts": a checkbox (a plain form sends it only when ticked)."""
    on = form_value("read_receipts") in ("on", "true", "1")
    accounts.set_read_receipts(current_user, on)
    if wants_json():
        return jsonify(read_receipts=current_user.read_receipts)
    return _page(done="Read receipts on." if on else "Read receipts off.")
