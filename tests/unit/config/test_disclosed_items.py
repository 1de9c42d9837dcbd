"""What was disclosed per destination: the items and recipients `disclosed:` compares with."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import disclosures as module
from monitor.config.disclosures import Disclosure, Disclosures, load_disclosures
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
