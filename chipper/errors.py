"""The refusals every layer raises: a message to show and the HTTP status an API client sees.

Here, below the services, so that lower packages (chipper.media) raise them without importing
chipper.services; `chipper.services` re-exports them for the blueprints.
"""


class ServiceError(Exception):
    """A refused action, with the HTTP status an API client should see."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


class Invalid(ServiceError):
    status = 422


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class Unsupported(ServiceError):
    """A file of a kind Chipper does not take."""

    status = 415


class Damaged(ServiceError):
    """A file that claims to be a kind we take but does not hold together."""


class NotStored(ServiceError):
    """The server could not write a file: its upload folder cannot be written. Not the
    sender's doing, so a 5xx, but one that says what happened, never a bare 500."""

    status = 503


class NoRoom(NotStored):
    """The server's disk is full (or the file would pass the size its processes may write)."""

    status = 507
