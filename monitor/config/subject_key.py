"""The secret that keys data subjects' state keys.

Consent state is kept per platform and data subject, under a hash of the
subject id. Pseudonymous ids are often guessable (sequential numbers, phone
numbers): an unkeyed hash could be reversed by hashing candidates, so the
hash is keyed (BLAKE2b with a key derived from a secret) and the state,
its changelog and the internal topics hold nothing that leads back to a
subject without the secret.

Every worker of one application must use the same secret: it decides which
state key a subject's records meet, so it cannot change without losing the
consent state. Replay, whose state lives for one run, draws a random key
when none is configured.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from monitor.config.settings import Settings
from monitor.config.yamlfile import read_config_file
from monitor.errors import ConfigError, Location

__all__ = ["MIN_SECRET_BYTES", "derive", "random_key", "subject_key"]

MIN_SECRET_BYTES = 16
_HOW = "e.g. `head -c 32 /dev/urandom > subject.key` and XBORDER_SUBJECT_KEY_FILE=subject.key"


def derive(secret: bytes) -> bytes:
    """The BLAKE2b key (32 bytes) for a secret of any length."""
    return hashlib.blake2b(secret, digest_size=32, person=b"xborder-subject").digest()


def random_key() -> bytes:
    return os.urandom(32)


def subject_key(settings: Settings) -> bytes | None:
    """The key from XBORDER_SUBJECT_KEY or XBORDER_SUBJECT_KEY_FILE; None when neither is set."""
    if settings.subject_key is not None:
        secret = settings.subject_key.get_secret_value().encode()
        where = "XBORDER_SUBJECT_KEY"
    elif settings.subject_key_file is not None:
        secret = _read_secret(settings.subject_key_file)
        where = str(settings.subject_key_file)
    else:
        return None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"subject key too short: at least {MIN_SECRET_BYTES} bytes ({_HOW})", Location(where)
        )
    return derive(secret)


def _read_secret(path: Path) -> bytes:
    """A secret file's bytes, a trailing newline dropped; read as safely as configuration."""
    try:
        data = read_config_file(path, [path.parent])
    except ConfigError as e:
        raise ConfigError(f"subject key: {e.message} ({_HOW})", e.location) from None
    return data.rstrip(b"\r\n")
