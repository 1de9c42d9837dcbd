"""What was disclosed per destination: the items and recipients `disclosed:` compares with."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from monitor.config import disclosures as module
from monitor.config.disclosures import Certification, Disclosure, Disclosures, load_disclosures
from monitor.errors import ConfigError, ConfigErrors
from tests.support.pack import DISCLOSURES

TEMU_SG = ("user.contact", "user.name", "user.behavior")


@pytest.mark.parametrize(
    ("labels", "covered"),
    [
        ((), True),
        (("user.contact",), True),
        (("user.contact.email", "user.behavior.purchase_history"), True),  # finer labels
        (("user.name", "system.operations", "device"), True),  # only personal labels count
        (("user.payment",), False),
        (("user.contact.email", "user.payment.card_number"), False),
        (("user",), False),  # coarser than anything disclosed
        (("user.contactless",), False),  # a prefix of the name is not a parent
    ],
)
def test_temu_singapore(labels: tuple[str, ...], covered: bool) -> None:
    assert DISCLOSURES.items("temu", "SG") == TEMU_SG
    assert DISCLOSURES.items_disclosed("temu", "SG", labels) is covered


def test_an_undisclosed_country_or_platform_covers_no_item() -> None:
    assert DISCLOSURES.items("temu", "CN") == ()
    assert DISCLOSURES.items_disclosed("temu", "CN", ("user.contact",)) is False
    assert DISCLOSURES.items_disclosed("nobody", "SG", ("user.contact",)) is False
    assert DISCLOSURES.items_disclosed("temu", None, ("user.contact",)) is False


def test_entries_for_one_country_add_up_and_one_without_items_is_unchecked() -> None:
    d = Disclosures(
        {
            "p": (
                Disclosure("SG", items=("user.contact",)),
                Disclosure("SG", items=("user.payment",)),
                Disclosure("US", items=("user.name",)),
                Disclosure("US"),
            )
        }
    )
    assert d.items_disclosed("p", "SG", ("user.contact.email", "user.payment")) is True
    assert d.items_disclosed("p", "SG", ("user.name",)) is False
    assert d.items("p", "US") is None
    assert d.items_disclosed("p", "US", ("user.government_id",)) is True


def test_verdicts_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_MAX_VERDICTS", 3)
    d = Disclosures({"p": (Disclosure("SG", items=("user.contact",)),)})
    for i in range(10):
        assert d.items_disclosed("p", "SG", (f"user.contact.x{i}",)) is True
    assert d.items_disclosed("p", "SG", ("user.payment",)) is False
    assert len(d._covered) <= 3  # type: ignore[attr-defined]


def test_the_yaml_shape_carries_items(tmp_path: Path) -> None:
    path = tmp_path / "disclosures.yaml"
    path.write_text("temu:\n  - country: SG\n    items: [user.contact]\n  - country: US\n")
    d = load_disclosures(path)
    assert d.items("temu", "SG") == ("user.contact",)
    assert d.items("temu", "US") is None


@pytest.mark.parametrize(
    ("platform", "country", "recipient", "disclosed"),
    [
        ("temu", "SG", "Whaleco Technology Ltd. (hosting)", True),
        ("temu", "SG", "  whaleco technology   LTD. (Hosting) ", True),  # case, spaces
        ("temu", "SG", None, True),  # the call names no one: nothing to compare
        ("temu", "SG", "Whaleco Inc.", False),  # disclosed, but for the US
        ("temu", "US", "Whaleco Inc.", True),
        ("temu", "CN", "Whaleco Inc.", False),  # undisclosed country
        ("nobody", "SG", "Whaleco Inc.", False),
    ],
)
def test_recipient_disclosed(
    platform: str, country: str, recipient: str | None, disclosed: bool
) -> None:
    assert DISCLOSURES.recipient_disclosed(platform, country, recipient) is disclosed


def test_recipients_of_one_country_add_up_and_one_unnamed_leaves_it_unchecked() -> None:
    d = Disclosures(
        {
            "p": (
                Disclosure("SG", recipient="A Pte. Ltd."),
                Disclosure("SG", recipient="B Pte. Ltd."),
                Disclosure("US", recipient="C Inc."),
                Disclosure("US"),
            )
        }
    )
    assert d.recipient_disclosed("p", "SG", "b pte. ltd.") is True
    assert d.recipient_disclosed("p", "SG", "C Inc.") is False
    assert d.recipient_disclosed("p", "US", "Anyone") is True


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_certification_in_force_through_its_last_day_utc() -> None:
    # temu US: EXAMPLE-CERT-0002, valid until 2026-06-30 (rules/config/disclosures.yaml).
    assert DISCLOSURES.certified("temu", "US", None, _ms("2026-06-30T23:59:59.999+00:00"))
    assert not DISCLOSURES.certified("temu", "US", None, _ms("2026-07-01T00:00:00+00:00"))
    assert DISCLOSURES.certified("temu", "US", "whaleco inc.", _ms("2026-01-01T00:00:00+00:00"))
    assert not DISCLOSURES.certified("temu", "US", "Other Inc.", _ms("2026-01-01T00:00:00+00:00"))
    assert not DISCLOSURES.certified("temu", "SG", None, _ms("2026-01-01T00:00:00+00:00"))
    assert not DISCLOSURES.certified("temu", "CN", None, _ms("2026-01-01T00:00:00+00:00"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{id: C-1, valid_until: 2027-01-01}", None),
        ('{id: C-1, valid_until: "2027-01-01"}', None),
        ("{id: C-1, valid_until: 2027-13-01}", "cannot read value '2027-13-01'"),
        ('{id: C-1, valid_until: "2027-13-01"}', "valid_until must be a date"),
        ("{id: C-1, valid_until: 2027-01-01T10:00:00Z}", "valid_until must be a date"),
        ("{id: C-1}", "needs exactly 'id' and 'valid_until'"),
        ("{id: [x], valid_until: 2027-01-01}", "'id' must be text"),
        ("C-1", "needs exactly 'id' and 'valid_until'"),
    ],
)
def test_certification_shape(tmp_path: Path, text: str, error: str | None) -> None:
    path = tmp_path / "disclosures.yaml"
    path.write_text(f"temu:\n  - country: SG\n    certification: {text}\n")
    if error is None:
        cert = load_disclosures(path).by_platform["temu"][0].certification
        assert cert == Certification("C-1", date(2027, 1, 1))
        return
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_disclosures(path)
    assert error in str(info.value)
