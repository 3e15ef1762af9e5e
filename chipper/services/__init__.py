"""Service verbs: check the rule, write, commit. Routes call exactly one of these."""


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
