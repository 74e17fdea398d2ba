"""Password hashing (Argon2id, argon2-cffi defaults) and the password policy."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.errors import InputError

_hasher = PasswordHasher()  # Argon2id


@lru_cache(maxsize=1)
def blocklist() -> frozenset[str]:
    text = resources.files("appliance").joinpath("resources/common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_policy(name: str, password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise InputError(f"password for {name!r}: must be at least {min_length} characters")
    lowered = password.lower()
    if lowered in blocklist():
        raise InputError(f"password for {name!r}: too common (it is on the appliance's blocklist)")
    if name.lower() in lowered:
        raise InputError(f"password for {name!r}: must not contain the user name")
    if len(set(password)) < 5:
        raise InputError(f"password for {name!r}: too few distinct characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def dummy_verify(password: str) -> None:
    """Spend the same time as a real verification, so an unknown name is not revealed by timing."""
    verify_password(_dummy_hash(), password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not a real password, only for timing")
