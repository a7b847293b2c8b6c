"""The four US Census Bureau regions, by state (Census Regions and Divisions of the United
States, U.S. Census Bureau; public facts). A region is the geography count breakdowns use:
coarse enough that a cell rarely singles anyone out."""

from __future__ import annotations

from .values import ValueRejected

__all__ = ["REGIONS", "OUTSIDE", "region_of_state"]

REGIONS: dict[str, tuple[str, ...]] = {
    "northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"),
    "midwest": ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "south": ("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN",
              "AR", "LA", "OK", "TX"),
    "west": ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"),
}
# Outside the four regions: territories and freely associated states, and military mail.
OUTSIDE = {"territories": ("PR", "VI", "GU", "AS", "MP", "PW", "FM", "MH", "UM"),
           "military": ("AA", "AE", "AP")}
_BY_STATE = {state: region for group in (REGIONS, OUTSIDE) for region, states in group.items()
             for state in states}


def region_of_state(state: str) -> str:
    """The region of a two-letter state code (any case); ``territories`` or ``military``
    for the codes outside the four regions.

    Raises:
        ValueRejected: not a US state, territory or military code.
    """
    region = _BY_STATE.get(state.strip().upper())
    if region is None:
        raise ValueRejected("is not a US state code (two letters)")
    return region
