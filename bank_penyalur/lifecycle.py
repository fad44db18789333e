"""KKS card lifecycle as a pure transition table.

printed -> distributed -> activated (PIN set) -> blocked / lost / damaged -> replaced.
A replacement is a new card for the same KPM: it reaches the same sub-accounts and balance,
and the old card is refused from then on (41 when it was lost, 62 otherwise).
"""

from __future__ import annotations

from bank_penyalur.tables import (
    ACTIVATED,
    BLOCKED,
    DAMAGED,
    DISTRIBUTED,
    LOST,
    PRINTED,
    REPLACED,
)

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "distribute": (frozenset({PRINTED}), DISTRIBUTED),
    "activate": (frozenset({DISTRIBUTED}), ACTIVATED),
    "block": (frozenset({PRINTED, DISTRIBUTED, ACTIVATED}), BLOCKED),
    "unblock": (frozenset({BLOCKED}), ACTIVATED),
    "report_lost": (frozenset({PRINTED, DISTRIBUTED, ACTIVATED, BLOCKED}), LOST),
    "report_damaged": (frozenset({DISTRIBUTED, ACTIVATED, BLOCKED}), DAMAGED),
    "replace": (frozenset({LOST, DAMAGED, BLOCKED}), REPLACED),
}


class TransitionError(ValueError):
    """The card cannot take this action in its current status."""


def next_status(current: str, action: str) -> str:
    try:
        sources, target = TRANSITIONS[action]
    except KeyError:
        raise TransitionError(f"unknown card action {action!r}") from None
    if current not in sources:
        allowed = ", ".join(sorted(sources))
        raise TransitionError(f"cannot {action.replace('_', ' ')} a card that is {current} (needs: {allowed})")
    return target
