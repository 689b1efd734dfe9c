"""API key format and hashing: the one place that knows how keys look."""

import hashlib
import secrets

TOKEN_PREFIX = "lathe_"  # noqa: S105 (a prefix, not a secret)


def token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(plaintext: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()
