"""The profile page (also at /account): your name, email address and picture; change the
password, choose whether others see when you have read, see where the account is signed in,
sign out everywhere else."""

from flask import jsonify, request, url_for
from flask_login import current_user, login_required

from chipper.auth import bp
from chipper.models import iso
from chipper.services import Invalid, ServiceError, accounts, profiles, sessions
from chipper.web import form_value, json_error, page, see_other, wants_json


def _page(status: int = 200, **context):
    context.setdefault("errors", {})
    context.setdefault("done", None)
    signed_in = sessions.active(current_user)
    return page("auth/account.html", status=status, signed_in=signed_in, **context)


@bp.get("/account")
@bp.get("/profile")  # registered first: the address url_for gives
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
            user={**current_user.to_json(), "email": current_user.email},
        )
    return _page()


def _profile_json():
    return jsonify(user={**current_user.to_json(), "email": current_user.email})


@bp.post("/profile")
@login_required
def update_profile():
    """Name and email address (a new address needs the current password)."""
    try:
        changed = profiles.update(
            current_user,
            form_value("name", current_user.name),
            form_value("email", current_user.email),
            form_value("current_password"),
        )
    except Invalid as error:
        if wants_json():
            return json_error(error.message, 422, error.field)
        return _page(422, errors={error.field: error.message}, profile_form=request.form)
    if wants_json():
        return _profile_json()
    done = {
        ("name",): "Name changed.",
        ("email",): "Email address changed.",
        ("name", "email"): "Name and email address changed.",
    }.get(tuple(changed), "Nothing to change.")
    return _page(done=done)


@bp.post("/profile/avatar")
@login_required
def upload_avatar():
    """A new picture: a photo, checked like an attachment, kept as a 256 px square."""
    chosen = request.files.get("avatar")
    try:
        if chosen is None or not chosen.filename and not chosen.stream.read(1):
            raise Invalid("Choose a photo first.", field="avatar")
        chosen.stream.seek(0)
        profiles.set_avatar(current_user, chosen.stream, chosen.filename)
    except ServiceError as error:
        if wants_json():
            return json_error(error.message, error.status, "avatar")
        return _page(error.status, errors={"avatar": error.message})
    if wants_json():
        return _profile_json()
    return _page(done="Picture changed.")


@bp.post("/profile/avatar/remove")
@login_required
def remove_avatar():
    removed = profiles.remove_avatar(current_user)
    if wants_json():
        return _profile_json()
    return _page(done="Picture removed." if removed else "You have no picture.")


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
