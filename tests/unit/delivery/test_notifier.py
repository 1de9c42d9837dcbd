"""What `xborder notify` commits: only offsets before which every delivery has finished."""

from __future__ import annotations

import orjson

from monitor.delivery.model import Delivery
from monitor.delivery.notifier import Pending, render_with_link, undelivered_record
from tests.support.alert_sample import sample_alert


def test_an_offset_commits_only_once_every_delivery_before_it_finished() -> None:
    p = Pending()
    a = p.add("tp", 10, 2)  # two receivers
    b = p.add("tp", 11, 1)
    p.add("tp", 12, 0)  # routed to nobody
    assert p.take() == {}
    p.finish("tp", b)  # a later offset finishing first commits nothing
    assert p.take() == {}
    p.finish("tp", a)
    assert p.take() == {}
    p.finish("tp", a)
    assert p.take() == {"tp": 13}  # 10, 11 and 12 are done
    assert p.unfinished() == 0


def test_partitions_are_independent_and_forgotten_on_revocation() -> None:
    p = Pending()
    slow = p.add("p0", 5, 1)
    p.add("p1", 7, 0)
    assert p.take() == {"p1": 8}
    p.forget(["p0"])
    p.finish("p0", slow)  # a delivery of a revoked partition ends: nothing to commit
    assert p.take() == {}


def test_the_link_names_the_alert_and_undelivered_records_carry_the_last_error() -> None:
    alert = sample_alert()
    _, body = render_with_link("https://cases.example.org/a/{alert_id}")("native", alert)
    assert orjson.loads(body)["link"] == f"https://cases.example.org/a/{alert['alert_id']}"
    record = undelivered_record(Delivery(alert, "siem"), "ClientConnectorError", 0)
    assert record["receiver"] == "siem" and record["error"] == "ClientConnectorError"
    assert record["key"] == f"{alert['alert_id']}.{alert['revision']}"
    assert record["alert"] == alert
