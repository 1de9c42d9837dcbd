"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign, verify, secrets.

A delivery carries `webhook-id` (the idempotency key), `webhook-timestamp`
(unix seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`. The signature covers the id and the time as well
as the body, so a receiver that refuses old timestamps and remembers the
(id, signature) pairs it accepted cannot be fed the same request twice.
Several signatures, space separated, let a receiver roll its secret: the
sender signs with old and new until every receiver has the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from monitor.errors import XborderError

__all__ = [
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "SecretError",
    "SignatureError",
    "Verified",
    "load_secret",
    "parse_secret",
    "sign",
    "verify",
    "verify_message",
]

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"
_VERSION: Final = "v1"
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")

# One key, or several while a secret is being rolled over.
Secrets = bytes | Sequence[bytes]


class SecretError(XborderError):
    """A secret that cannot be used; names where it came from, never what it is."""


class SignatureError(ValueError):
    """A request that does not verify; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse_secret(text: str, origin: str = "secret") -> bytes:
    """`whsec_<base64>` (the key is what the base64 says) or any other text (its UTF-8 bytes).

    `origin` names the variable or file in errors. Surrounding whitespace, a
    file's trailing newline above all, is never part of the key.
    """
    text = text.strip()
    if not text:
        raise SecretError(f"{origin} is empty")
    if not text.startswith(SECRET_PREFIX):
        return text.encode()
    encoded = text.removeprefix(SECRET_PREFIX)
    try:
        # Unpadded base64 is common in whsec_ secrets; extra padding is ignored.
        key = base64.b64decode(encoded + "==", validate=False)
        if base64.b64encode(key).rstrip(b"=") != encoded.rstrip("=").encode():
            raise ValueError
    except (ValueError, binascii.Error):
        raise SecretError(f"{origin}: what follows {SECRET_PREFIX} is not base64") from None
    if not key:
        raise SecretError(f"{origin} is empty after {SECRET_PREFIX}")
    return key


def load_secret(env: str | None = None, file: str | Path | None = None) -> bytes:
    """The secret from an environment variable or a file (one of the two)."""
    if (env is None) == (file is None):
        raise ValueError("load_secret takes an environment variable or a file, one of the two")
    if file is None:
        value = os.environ.get(env or "")
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        return parse_secret(value, f"environment variable {env}")
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError(f"secret file not found: {path}") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None
    except OSError as e:
        raise SecretError(f"cannot read secret file {path}: {e.strerror or e}") from None
    return parse_secret(text, f"secret file {path}")


def _keys(secret: Secrets) -> list[bytes]:
    keys = [secret] if isinstance(secret, bytes) else list(secret)
    if not keys or not all(keys):
        raise ValueError("signing needs a non-empty secret")
    return keys


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: Secrets, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery; several secrets give several signatures."""
    ts = str(int(timestamp))
    signatures = " ".join(
        f"{_VERSION},{base64.b64encode(_digest(k, msg_id, ts, body)).decode()}"
        for k in _keys(secret)
    )
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: ts, HEADER_SIGNATURE: signatures}


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified request said: its id, its timestamp and the signature that matched."""

    msg_id: str
    timestamp: int
    signature: str  # the `v1,...` entry; with msg_id, what a replay repeats


def verify_message(
    secret: Secrets,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: float = 300,
) -> Verified:
    """Check one request's signature and timestamp; SignatureError says why it fails."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get(HEADER_ID, "").strip()
    ts_text = lower.get(HEADER_TIMESTAMP, "").strip()
    offered = lower.get(HEADER_SIGNATURE, "").strip()
    missing = [
        h
        for h, v in ((HEADER_ID, msg_id), (HEADER_TIMESTAMP, ts_text), (HEADER_SIGNATURE, offered))
        if not v
    ]
    if missing:
        raise SignatureError(f"missing headers: {', '.join(missing)}")
    if not _TIMESTAMP.fullmatch(ts_text):
        raise SignatureError("bad timestamp: not unix seconds")
    timestamp = int(ts_text)
    if timestamp < now - tolerance_s:
        raise SignatureError(f"stale timestamp: older than {tolerance_s:g} s")
    if timestamp > now + tolerance_s:
        raise SignatureError(f"future timestamp: more than {tolerance_s:g} s ahead")
    expected = [_digest(k, msg_id, ts_text, body) for k in _keys(secret)]
    for entry in offered.split():
        version, _, value = entry.partition(",")
        if version != _VERSION:
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            continue
        # Every key compared, in constant time each: how long it takes says
        # nothing about which key or how much of a signature matched.
        if sum(hmac.compare_digest(given, e) for e in expected):
            return Verified(msg_id, timestamp, entry)
    raise SignatureError("no matching signature")


def verify(
    secret: Secrets,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: float = 300,
) -> str:
    """The message id of a request whose signature and timestamp verify; else SignatureError."""
    return verify_message(secret, headers, body, now, tolerance_s).msg_id
