"""What the simulator can inject, the rule each injection must fire, and how records break."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ALSO_FIRES", "INVALID_REASONS", "MAX_EPISODE", "RULE_OF", "VIOLATIONS"]

VIOLATIONS: Final = (
    "no_legal_basis",
    "undisclosed_destination",
    "stored_in_watch_country",
    "onward_transfer",
    "consent_withdrawn",
    "national_id_abroad",
    "bulk_volume",
    "unresolved_destination",
    "undisclosed_items",
    "adequacy_not_recognised",
    "undisclosed_recipient",
    "certification_not_in_force",
)

RULE_OF: Final[Mapping[str, str]] = {
    "no_legal_basis": "pipa.xborder.no_legal_basis",
    "undisclosed_destination": "pipa.xborder.undisclosed_destination",
    "stored_in_watch_country": "pipa.xborder.stored_in_watch_country",
    "onward_transfer": "pipa.xborder.onward_transfer",
    "consent_withdrawn": "pipa.xborder.consent_withdrawn",
    "national_id_abroad": "pipa.xborder.national_id_abroad",
    "bulk_volume": "pipa.xborder.bulk_volume",
    "unresolved_destination": "monitor.unresolved_destination",
    "undisclosed_items": "pipa.xborder.undisclosed_items",
    "adequacy_not_recognised": "pipa.xborder.adequacy_not_recognised",
    "undisclosed_recipient": "pipa.xborder.undisclosed_recipient",
    "certification_not_in_force": "pipa.xborder.certification_not_in_force",
}

# Rules an episode may fire besides its own. An onward transfer to a third
# country the platform never disclosed (AliExpress China -> Russia) is also an
# undisclosed destination, and the real cases the simulator imitates are; to
# one it disclosed for fewer items (Shein Singapore -> US, names) it sends
# undisclosed items. No platform discloses resident registration numbers.
ALSO_FIRES: Final[Mapping[str, frozenset[str]]] = {
    "onward_transfer": frozenset(
        {"pipa.xborder.undisclosed_destination", "pipa.xborder.undisclosed_items"}
    ),
    "national_id_abroad": frozenset({"pipa.xborder.undisclosed_items"}),
}

# Records an episode of each kind sends at most.
MAX_EPISODE: Final[Mapping[str, int]] = {
    k: {"onward_transfer": 2, "consent_withdrawn": 2, "bulk_volume": 5}.get(k, 1)
    for k in VIOLATIONS
}

# Dead-letter reason families; missing_field / invalid_field get the field name appended.
INVALID_REASONS: Final = (
    "invalid_json",
    "not_an_object",
    "unknown_kind",
    "unsupported_version",
    "missing_field",
    "invalid_field",
)
