"""Password hashes: argon2id (argon2-cffi) at or above OWASP's minimum (19 MiB, 2 passes, one
lane), from config. Hashes made before (werkzeug's scrypt or pbkdf2) still verify and are
replaced on the next sign-in, as are argon2 hashes with weaker parameters than the config's."""

from functools import cache

import argon2
from flask import current_app
from werkzeug.security import check_password_hash

# Argon2 hashes start so; anything else came from werkzeug.
ARGON2 = "$argon2"


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
    )


def hasher() -> argon2.PasswordHasher:
    config = current_app.config
    return _hasher(
        int(config["PASSWORD_HASH_TIME"]),
        int(config["PASSWORD_HASH_MEMORY_KIB"]),
        int(config["PASSWORD_HASH_PARALLELISM"]),
    )


def make_hash(password: str) -> str:
    return hasher().hash(password)


def verify(stored: str, password: str) -> tuple[bool, bool]:
    """(whether the password matches, whether the stored hash should be made anew)."""
    if not stored.startswith(ARGON2):
        return check_password_hash(stored, password), True
    try:
        hasher().verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False, False
    return True, hasher().check_needs_rehash(stored)


def waste_time(password: str) -> None:
    """As long as checking a real hash: login takes the same time for an unknown email."""
    verify(_dummy_hash(), password)


def _dummy_hash() -> str:
    key = "chipper.dummy_password_hash"
    if key not in current_app.extensions:
        current_app.extensions[key] = make_hash("no account has this password")
    return current_app.extensions[key]


@cache
def _common() -> frozenset[str]:
    # zxcvbn ships the 30,000 passwords found most often in leaks, ranked; it is loaded on
    # first use (a few MB), not at import.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    return password.lower() in _common()
