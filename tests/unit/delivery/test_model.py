from monitor.delivery.model import Receiver, idempotency_key, severity_rank


def test_severity_rank_orders_known_and_puts_unknown_last() -> None:
    assert severity_rank("low") < severity_rank("medium") < severity_rank("high")
    assert severity_rank("critical") < severity_rank("catastrophic")


def test_receiver_repr_never_shows_the_secret() -> None:
    r = Receiver(name="case", url="https://example.org/hook", secret=b"s3cret-value")
    assert "s3cret" not in repr(r)


def test_idempotency_key_is_alert_id_and_revision() -> None:
    alert = {"alert_id": "ab12", "revision": 3}
    assert idempotency_key(alert) == "ab12.3"  # type: ignore[arg-type]
