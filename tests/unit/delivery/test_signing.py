"""Signatures: agree with the standardwebhooks package both ways; refuse forged, stale and
malformed requests with a reason; roll keys; read secrets without ever showing them."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.delivery.signing import (
    SecretError,
    SignatureError,
    load_secret,
    parse_secret,
    sign,
    verify,
    verify_message,
)

KEY = bytes(range(32))
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
OTHER = b"another-key-entirely-32-bytes-ok"
BODY = b'{"alert_id":"ab12","revision":2,"title":"\xc3\x9cbermittlung"}'
ID = "ab12.2"
T = 1_790_000_000


def test_ours_verified_by_the_package() -> None:
    now = int(time.time())
    headers = sign(KEY, ID, now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == ID and headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(WHSEC).verify(BODY, headers, json_parse=False) is None
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(BODY + b" ", headers)


def test_the_packages_verified_by_ours() -> None:
    now = int(time.time())
    signature = Webhook(WHSEC).sign(ID, datetime.fromtimestamp(now, UTC), BODY.decode())
    headers = {"Webhook-Id": ID, "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    assert verify(parse_secret(WHSEC), headers, BODY, now=now) == ID


def test_a_raw_text_secret_is_its_bytes() -> None:
    now = int(time.time())
    headers = sign(parse_secret("  correct horse battery staple\n"), ID, now, BODY)
    Webhook(b"correct horse battery staple").verify(BODY, headers, json_parse=False)


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({}, BODY.replace(b"ab12", b"ab13")),  # the body
        ({"webhook-id": "ab12.3"}, BODY),  # another revision's id
        ({"webhook-timestamp": str(T + 1)}, BODY),  # a fresher time
    ],
)
def test_forged_requests_match_no_signature(change: dict[str, str], body: bytes) -> None:
    headers = {**sign(KEY, ID, T, BODY), **change}
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(KEY, headers, body, now=T)


def test_another_key_matches_no_signature() -> None:
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(OTHER, sign(KEY, ID, T, BODY), BODY, now=T)


def test_missing_headers_are_named() -> None:
    headers = sign(KEY, ID, T, BODY)
    del headers["webhook-signature"]
    headers["webhook-id"] = " "
    with pytest.raises(SignatureError, match="missing headers: webhook-id, webhook-signature"):
        verify(KEY, headers, BODY, now=T)
    with pytest.raises(SignatureError, match="missing headers"):
        verify(KEY, {}, BODY, now=T)


@pytest.mark.parametrize("ts", ["1.79e9", "-5", "soon", "1790000000.5"])
def test_a_timestamp_that_is_not_unix_seconds(ts: str) -> None:
    headers = {**sign(KEY, ID, T, BODY), "webhook-timestamp": ts}
    with pytest.raises(SignatureError, match="bad timestamp"):
        verify(KEY, headers, BODY, now=T)


def test_stale_and_future_timestamps_outside_the_tolerance() -> None:
    headers = sign(KEY, ID, T, BODY)
    assert verify(KEY, headers, BODY, now=T + 300) == ID
    assert verify(KEY, headers, BODY, now=T - 300) == ID
    with pytest.raises(SignatureError, match="stale timestamp"):
        verify(KEY, headers, BODY, now=T + 301)
    with pytest.raises(SignatureError, match="future timestamp"):
        verify(KEY, headers, BODY, now=T - 301)
    with pytest.raises(SignatureError, match="stale timestamp: older than 10 s"):
        verify(KEY, headers, BODY, now=T + 11, tolerance_s=10)


def test_rotated_keys() -> None:
    both = sign([OTHER, KEY], ID, T, BODY)
    assert len(both["webhook-signature"].split(" ")) == 2
    # A receiver on either key accepts what the sender signs with both.
    assert verify(KEY, both, BODY, now=T) == ID
    assert verify(OTHER, both, BODY, now=T) == ID
    # A receiver rolling over accepts the old key's signature and the new one's.
    assert verify([OTHER, KEY], sign(KEY, ID, T, BODY), BODY, now=T) == ID
    now = int(time.time())
    Webhook(WHSEC).verify(BODY, sign([OTHER, KEY], ID, now, BODY), json_parse=False)


def test_unknown_versions_and_malformed_entries_are_skipped() -> None:
    good = sign(KEY, ID, T, BODY)["webhook-signature"]
    headers = {**sign(KEY, ID, T, BODY), "webhook-signature": f"v1a,abc v1,%%% nocomma {good}"}
    got = verify_message(KEY, headers, BODY, now=T)
    assert (got.msg_id, got.timestamp, got.signature) == (ID, T, good)
    only_other = {**headers, "webhook-signature": good.replace("v1,", "v2,")}
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(KEY, only_other, BODY, now=T)


def test_parse_secret() -> None:
    assert parse_secret(WHSEC) == KEY
    assert parse_secret(WHSEC.rstrip("=") + "\n") == KEY  # unpadded, a file's newline
    assert parse_secret(" plain text ") == b"plain text"
    for bad, reason in [
        ("", "is empty"),
        (" \n", "is empty"),
        ("whsec_", "is empty after whsec_"),
        ("whsec_not*base64!", "not base64"),
    ]:
        with pytest.raises(SecretError, match=reason):
            parse_secret(bad, "the test secret")


def test_load_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XB_TEST_SECRET", WHSEC)
    assert load_secret(env="XB_TEST_SECRET") == KEY
    monkeypatch.delenv("XB_TEST_SECRET")
    with pytest.raises(SecretError, match="environment variable XB_TEST_SECRET is not set"):
        load_secret(env="XB_TEST_SECRET")
    monkeypatch.setenv("XB_TEST_SECRET", "whsec_s3cr3t-but-not-base64")
    with pytest.raises(SecretError, match="XB_TEST_SECRET") as e:
        load_secret(env="XB_TEST_SECRET")
    assert "s3cr3t" not in str(e.value)


def test_load_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(WHSEC + "\n")
    assert load_secret(file=path) == KEY
    assert load_secret(file=str(path)) == KEY
    missing = tmp_path / "nope"
    with pytest.raises(SecretError, match=f"secret file not found: {missing}"):
        load_secret(file=missing)
    path.write_text("\n")
    with pytest.raises(SecretError, match=f"secret file {path} is empty"):
        load_secret(file=path)
    path.write_text("whsec_s3cr3t-but-not-base64")
    with pytest.raises(SecretError, match=str(path)) as e:
        load_secret(file=path)
    assert "s3cr3t" not in str(e.value)
    with pytest.raises(SecretError, match=f"cannot read secret file {tmp_path}"):
        load_secret(file=tmp_path)  # a folder


def test_load_secret_takes_one_source() -> None:
    with pytest.raises(ValueError, match="one of the two"):
        load_secret()
    with pytest.raises(ValueError, match="one of the two"):
        load_secret(env="X", file="y")


def test_signing_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="non-empty secret"):
        sign(b"", ID, T, BODY)
    with pytest.raises(ValueError, match="non-empty secret"):
        sign([], ID, T, BODY)
