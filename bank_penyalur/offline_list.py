"""Which cards go on the bank's offline card list (see `shared.offline`), as pure functions.

- **Hot list**: every card that may not be used: any status other than activated (blocked, lost,
  damaged, replaced, and printed or distributed cards not yet activated, which the bank refuses
  online too), and every card another card replaces, whatever its status.
- **ID references**: every activated card, not replaced, whose KPM has an e-money sub-account,
  with the holder's NIK. A replacement card keeps the KPM's balance: the new card is here, the
  old one on the hot list.

Each list is bounded (`REFS_MAX`, what `PAGES_MAX` pages carry). Past the bound the hot list
keeps the most recent changes of status and the ID list the oldest cards; either way the
references are then sorted (and duplicates dropped), so the same cards give the same list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared import offline

from bank_penyalur.tables import ACTIVATED

REFS_MAX = offline.PAGES_MAX * offline.REFS_PER_PAGE_MAX


@dataclass(frozen=True, slots=True)
class ListedCard:
    """What the list needs to know of one card (its number still sealed)."""

    card_id: int
    pan_sealed: str
    nik: str
    status: str  # the card's current status (its latest event)
    status_event_id: int  # id of that event: the higher, the more recent the change
    replaced: bool  # another card replaces this one
    emoney: bool  # the KPM has an e-money sub-account


@dataclass(frozen=True, slots=True)
class Selection:
    """The cards chosen for each list, within the bound; `truncated` when some were left out."""

    hot: list[ListedCard]
    ids: list[ListedCard]
    truncated: bool


def is_hot(card: ListedCard) -> bool:
    """The terminal must refuse this card offline."""
    return card.replaced or card.status != ACTIVATED


def has_id_reference(card: ListedCard) -> bool:
    """The terminal may accept this card offline, with its holder's NIK."""
    return not is_hot(card) and card.emoney


def select_cards(cards: Iterable[ListedCard], refs_max: int = REFS_MAX) -> Selection:
    """The cards of each list, at most `refs_max` per list."""
    cards = list(cards)
    hot = sorted((c for c in cards if is_hot(c)), key=lambda c: (-c.status_event_id, c.card_id))
    ids = sorted((c for c in cards if has_id_reference(c)), key=lambda c: c.card_id)
    truncated = len(hot) > refs_max or len(ids) > refs_max
    return Selection(hot[:refs_max], ids[:refs_max], truncated)


def hot_refs(key: bytes, pans: Iterable[str]) -> list[str]:
    """The sorted hot-list references of these card numbers, without duplicates."""
    return sorted({offline.hot_ref(key, pan) for pan in pans})


def id_refs(key: bytes, holders: Iterable[tuple[str, str]]) -> list[str]:
    """The sorted ID references of these (card number, NIK) pairs, without duplicates."""
    return sorted({offline.id_ref(key, pan, nik) for pan, nik in holders})
