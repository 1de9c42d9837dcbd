"""ISO 3166-1 alpha-2 codes officially assigned (249), for validating country fields.

From pycountry (Debian's iso-codes): user-assigned codes such as XK are not
among them, as the contract wants.
"""

from typing import Final

import pycountry

__all__ = ["ISO_ALPHA2"]

ISO_ALPHA2: Final = frozenset(country.alpha_2 for country in pycountry.countries)
