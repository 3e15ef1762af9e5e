"""Serving attachments to the people in their conversation."""

from flask import send_file
from flask_login import current_user, login_required

from chipper.attachments import bp
from chipper.media import path_of
from chipper.services import NotFound
from chipper.services.messages import attachment_for

# A file is never a page: nothing in it may run, load or frame anything, even when opened on
# its own in a tab.
SANDBOX = "default-src 'none'; sandbox"
# Private: only this user's browser keeps a copy; revalidated after an hour (ETag and
# Last-Modified make that cheap), so leaving a conversation soon stops a stale copy.
MAX_AGE = 3600


@bp.before_request
@login_required
def require_login():
    """Every attachment URL needs a signed-in participant."""


@bp.get("/attachments/<int:attachment_id>")
def show(attachment_id: int):
    attachment = attachment_for(current_user, attachment_id)
    # PDFs and other files are always downloaded; pictures, sound and video play in place.
    return _send(
        attachment.stored_name,
        attachment.content_type,
        attachment.original_name,
        attachment.kind == "file",
        attachment.created_at,
    )


@bp.get("/attachments/<int:attachment_id>/thumbnail")
def thumbnail(attachment_id: int):
    attachment = attachment_for(current_user, attachment_id, thumbnail=True)
    name = attachment.original_name.rsplit(".", 1)[0] + " (thumbnail).webp"
    return _send(attachment.thumbnail_name, "image/webp", name, False, attachment.created_at)


def _send(stored_name, content_type, download_name, as_attachment, created_at):
    try:
        # conditional=True: Range (206, 416), If-Range, ETag and If-Modified-Since (304).
        response = send_file(
            path_of(stored_name),
            mimetype=content_type,
            as_attachment=as_attachment,
            download_name=download_name,
            conditional=True,
            etag=True,
            last_modified=created_at,
            max_age=MAX_AGE,
        )
    except FileNotFoundError:
        # The row outlived its file (restored from a backup without the uploads, say).
        raise NotFound("This file is no longer here.") from None
    response.cache_control.private = True
    response.cache_control.public = False
    response.headers["Content-Security-Policy"] = SANDBOX
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.vary.add("Cookie")
    return response
