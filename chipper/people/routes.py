"""People as others see them: the profile card behind a name, and a person's picture. For
signed-in people only; your own profile is edited on /profile (chipper/auth/account.py)."""

from flask import jsonify, send_file
from flask_login import current_user, login_required

from chipper.extensions import db
from chipper.media import path_of
from chipper.models import User
from chipper.people import bp
from chipper.services import NotFound
from chipper.services.profiles import private_with
from chipper.web import page, wants_json

# A picture's address names its file (?v=), so a browser may keep it for good; private, as
# only signed-in people may see it.
FOREVER = 365 * 24 * 3600


@bp.before_request
@login_required
def require_login():
    """Every page here needs a signed-in person."""


def _person(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such person here.")
    return user


@bp.get("/users/<int:user_id>")
def card(user_id: int):
    """A small card: the picture, the name, and "Message" (opens or starts your private
    conversation with them). A page of its own without JavaScript, a dialog with it."""
    person = _person(user_id)
    chat = private_with(current_user, person) if person.id != current_user.id else None
    if wants_json():
        return jsonify(
            user=person.to_json(),
            active=person.is_active,
            conversation_id=chat.id if chat else None,
        )
    return page("people/card.html", "card", person=person, chat=chat)


@bp.get("/users/<int:user_id>/avatar")
def avatar(user_id: int):
    person = _person(user_id)
    if not person.avatar_name:
        raise NotFound("This person has no picture.")
    try:
        response = send_file(path_of(person.avatar_name), mimetype="image/webp", etag=True)
    except FileNotFoundError:
        raise NotFound("This picture is no longer here.") from None
    response.cache_control.private = True
    response.cache_control.max_age = FOREVER
    response.cache_control.immutable = True
    return response
