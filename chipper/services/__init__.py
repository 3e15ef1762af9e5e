"""Service verbs: check the rule, write, commit. Routes call exactly one of these.

The errors they raise live in chipper.errors (media raises them too) and are re-exported here.
"""

from chipper.errors import (
    Conflict,
    Damaged,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooLarge,
    Unsupported,
)

__all__ = [
    "Conflict",
    "Damaged",
    "Forbidden",
    "Invalid",
    "NotFound",
    "ServiceError",
    "TooLarge",
    "Unsupported",
]
