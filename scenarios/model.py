"""The scenario format: pydantic models of a replayable field-failure scenario.

A scenario names the field problem it reproduces, builds a small network (banks, terminals
with their links, the e-Warong stock), the people (KPM cards, demo or new) and plays steps,
each one action with optional expectations. The runner (a later package) executes these
models; this module only describes and checks them. Unknown keys are refused everywhere.

Cross-references (a card or terminal named but not defined, a card used before the step that
creates it, a journal check naming a later step) are checked by `scenarios.references`, which
the loader runs after these models validate.

Money is integer rupiah (`amount` in the file, `amount_idr` here). Durations are texts with
units ("91d", "2h", "30m", "45s", "500ms") held as `timedelta`. Times are naive WIB.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from bank_penyalur.demo.fixture import specs as demo_card_specs
from bank_penyalur.reports import LEVELS, MEASURES, TOTAL_LABEL
from ewarong_pos.catalogue import DEMO_PRODUCTS
from linksim.profiles import (
    BANDWIDTH_BYTES_PER_S_MAX,
    BUILT_IN,
    JITTER_MS_MAX,
    RTT_MS_MAX,
    LinkProfile,
    builtin_profile,
)
from linksim.proxy import DIRECTIONS, STEER_DELAY_MS_MAX
from shared.banks import BANK_CODES, DEMO_TERMINALS_PER_BANK
from switch.reconciliation import Line, Summary

from .values import (
    DURATION_PATTERN,
    TAG_PREFIX,
    TID_PATTERN,
    BankCode,
    CardName,
    IsoDate,
    Nik,
    Period,
    Pin,
    Rc,
    Rupiah,
    ScenarioName,
    SignedRupiah,
    StepName,
    Text,
    Tid,
    WibDateTime,
    duration,
    duration_text,
    parse_duration,
    one_of,
    one_or_many,
    shaped_text,
    shown,
    whole_number,
)

SCHEMA_ID = "urn:sembako-network:scenario-format:1"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

STEPS_MAX = 400
PEOPLE_MAX = 200
TERMINALS_MAX = 64
STOCK_ITEMS_MAX = 64
CART_ITEMS_MAX = 50
CART_QUANTITY_MAX = 10_000
STOCK_QUANTITY_MAX = 1_000_000
CHECKS_MAX = 20  # rows of one report check list, texts of one contains list
SEED_MAX = 2**32 - 1
ADVANCE_MAX = timedelta(days=400)
SERVICE_AFTER_MAX = timedelta(minutes=1)
WAIT_MAX = timedelta(minutes=10)
SAF_WITHIN_MAX = timedelta(minutes=10)

DEMO_LABELS: tuple[str, ...] = tuple(spec.label for spec in demo_card_specs())
SITUATIONS: tuple[str, ...] = ("normal", "zero_balance", "no_emoney", "pin_blocked", "lost", "blocked", "replaced", "pkh")
DEMO_SKUS: tuple[str, ...] = tuple(product.sku for product in DEMO_PRODUCTS)
SUMMARY_COLUMNS: tuple[str, ...] = tuple(Summary.model_fields)
LINE_COLUMNS: tuple[str, ...] = tuple(Line.model_fields)
RECONCILIATION_KINDS: tuple[str, ...] = ("purchase", "advice", "reversal")


class Spec(BaseModel):
    """Base of every part of a scenario: unknown keys and explicit nulls are refused."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null", "expecting a value here, got nothing (null): write one or leave the key out")
        return value


def _at_least_one(model: BaseModel, keys: tuple[str, ...], what: str) -> None:
    if not any(getattr(model, key) is not None for key in keys):
        aliases = [model.__class__.model_fields[key].alias or key for key in keys]
        raise PydanticCustomError("empty", "{what} needs at least one of: {keys}", {"what": what, "keys": ", ".join(aliases)})


# -- network -------------------------------------------------------------------------------------------


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise PydanticCustomError("probability", "expecting a probability within [0, 1], got {got}", {"got": shown(value)})
    return float(value)


Probability = Annotated[float, BeforeValidator(_probability), Field(json_schema_extra={"minimum": 0, "maximum": 1})]


class CustomLink(Spec):
    """A link profile of your own, with the fields of `linksim.LinkProfile`."""

    rtt_ms: whole_number(0, RTT_MS_MAX) = Field(0, description="Base round trip in milliseconds")
    jitter_ms: whole_number(0, JITTER_MS_MAX) = Field(0, description="Round trip varies by up to this much (at most rtt_ms)")
    loss: Probability = Field(0.0, description="Probability that a frame is lost, per direction")
    disconnect_rate: Probability = Field(0.0, description="Probability per frame that the link is cut")
    bandwidth_bytes_per_s: whole_number(0, BANDWIDTH_BYTES_PER_S_MAX) = Field(
        0, description="Bandwidth in bytes per second; 0 means unlimited"
    )

    @model_validator(mode="after")
    def _a_valid_profile(self) -> CustomLink:
        try:
            self.profile()
        except ValueError as exc:
            raise PydanticCustomError("link_profile", "{reason}", {"reason": str(exc)}) from None
        return self

    def profile(self, name: str = "custom") -> LinkProfile:
        return LinkProfile(name, **self.model_dump())


ProfileName = one_of(tuple(BUILT_IN), "a link profile name")
Link = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the explicit form
        Annotated[ProfileName, Tag(f"{TAG_PREFIX}name")],
        Annotated[CustomLink, Tag(f"{TAG_PREFIX}custom")],
    ],
    Discriminator(lambda value: f"{TAG_PREFIX}custom" if isinstance(value, (dict, CustomLink)) else f"{TAG_PREFIX}name"),
    Field(description=f"A built-in profile ({', '.join(BUILT_IN)}) or an inline custom profile"),
]


def link_profile(link: str | CustomLink) -> LinkProfile:
    """The `LinkProfile` a terminal's link names or describes."""
    return builtin_profile(link) if isinstance(link, str) else link.profile()


class StockItem(Spec):
    """One product on the e-Warong's shelf at the start."""

    quantity: whole_number(0, STOCK_QUANTITY_MAX) = Field(description="Units in stock")
    price_idr: Rupiah | None = Field(None, alias="price", description="Shelf price in rupiah (default: the demo catalogue's)")


def _stock_item(value: int | StockItem) -> StockItem:
    return value if isinstance(value, StockItem) else StockItem(quantity=value)


StockEntry = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the explicit form
        Annotated[whole_number(0, STOCK_QUANTITY_MAX), Tag(f"{TAG_PREFIX}quantity")],
        Annotated[StockItem, Tag(f"{TAG_PREFIX}item")],
    ],
    Discriminator(lambda value: f"{TAG_PREFIX}item" if isinstance(value, (dict, StockItem)) else f"{TAG_PREFIX}quantity"),
    AfterValidator(_stock_item),
]
DemoSku = one_of(DEMO_SKUS, "a product SKU of the demo catalogue")


class Terminal(Spec):
    """One EDC terminal of the scenario: a demo terminal id, its link and its e-Warong's stock."""

    tid: Tid = Field(description=f"Demo terminal id: bank prefix and serial 1..{DEMO_TERMINALS_PER_BANK}, e.g. BNI00001")
    link: Link = "direct"
    link_seed: whole_number(0, SEED_MAX) | None = Field(
        None, description="Seed of this link's randomness (default: derived from the scenario seed)"
    )
    stock: dict[DemoSku, StockEntry] | None = Field(
        None,
        max_length=STOCK_ITEMS_MAX,
        description="The e-Warong's opening stock where the POS is used: SKU -> quantity, or {quantity, price}. "
        "Default: the demo catalogue and its opening stock",
    )


class Network(Spec):
    """The network the scenario runs on."""

    banks: tuple[BankCode, ...] = Field(min_length=1, max_length=len(BANK_CODES), description="Banks that run (bank penyalur instances)")
    terminals: tuple[Terminal, ...] = Field(min_length=1, max_length=TERMINALS_MAX, description="EDC terminals and their links")
    seed: whole_number(0, SEED_MAX) = Field(description="Seed of the whole scenario (links, generated data)")
    start: WibDateTime = Field(description="Start of the injected clock: ISO date and time, WIB (no offset, or +07:00)")


# -- people ------------------------------------------------------------------------------------------------


class CardSpec(Spec):
    """A KPM card for the steps: a demo card by label, or a new card in a given situation."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["demo"]}, {"required": ["new"]}]})

    card_name: CardName = Field(alias="as", description="The name the steps use for this card, e.g. siti")
    bank: BankCode = Field(description="The issuing bank")
    demo: one_of(DEMO_LABELS, "a demo card label") | None = Field(
        None, description="A demo card of the bank, by label (bank_penyalur/demo/fixture.py)"
    )
    new: one_of(SITUATIONS, "a card situation") | None = Field(None, description="A new card in this situation")
    kpm_name: Text | None = Field(None, alias="name", description="New card: the KPM's name (default: generated)")
    pin: Pin | None = Field(None, description="New card: its PIN (default: generated)")
    nik: Nik | None = Field(None, description="New card: the holder's NIK (default: generated)")
    same_kpm_as: CardName | None = Field(None, description="New card: held by the same KPM as this earlier card (double cards)")
    replacement_as: CardName | None = Field(
        None, description="New card in situation 'replaced': the name of the card that replaced it"
    )

    @model_validator(mode="after")
    def _demo_or_new(self) -> CardSpec:
        if (self.demo is None) == (self.new is None):
            raise PydanticCustomError("card_kind", "a card is either demo: LABEL or new: SITUATION (exactly one of them)")
        return self


# -- actions -----------------------------------------------------------------------------------------------


class Disburse(Spec):
    """Disburse a period's benefit to every KPM of the banks."""

    period: Period = Field(description="The period, YYYY-MM")
    amount_idr: Rupiah = Field(alias="amount", description="Benefit per KPM in rupiah")
    bank: BankCode | None = Field(None, description="Only this bank (default: every bank of the network)")


class Cek(Spec):
    """Balance inquiry at a terminal."""

    card: CardName = Field(description="The card, by its name")
    terminal: Tid = Field(description="The terminal")
    pin: Pin | None = Field(None, description="The PIN keyed in (default: the card's own PIN)")


class Bayar(Spec):
    """Purchase of an amount keyed in by the cashier."""

    card: CardName = Field(description="The card, by its name")
    terminal: Tid = Field(description="The terminal")
    amount_idr: Rupiah = Field(alias="amount", description="Amount in rupiah")
    pin: Pin | None = Field(None, description="The PIN keyed in (default: the card's own PIN)")


class TarikTunai(Spec):
    """A cash withdrawal keyed on a terminal (processing code 01): the benefit is never paid out
    as cash, so the network refuses it. This EDC has no such function: the message is made
    with the terminal's keys, as a tampered or foreign terminal would send it."""

    card: CardName = Field(description="The card, by its name")
    terminal: Tid = Field(description="The terminal")
    amount_idr: Rupiah = Field(alias="amount", description="Cash asked for, in rupiah")
    pin: Pin | None = Field(None, description="The PIN keyed in (default: the card's own PIN)")


class Cart(Spec):
    """A purchase made at the e-Warong POS from a cart of products."""

    terminal: Tid = Field(description="The terminal of the e-Warong")
    card: CardName = Field(description="The card, by its name")
    items: dict[DemoSku, whole_number(1, CART_QUANTITY_MAX)] = Field(
        min_length=1, max_length=CART_ITEMS_MAX, description="SKU -> quantity"
    )
    pin: Pin | None = Field(None, description="The PIN keyed in (default: the card's own PIN)")


class TerminalAction(Spec):
    """An action of one terminal (or on its link)."""

    terminal: Tid = Field(description="The terminal")


class OfflineSale(Spec):
    """A sale the terminal decides offline: card plus the holder's ID instead of the PIN."""

    terminal: Tid = Field(description="The terminal")
    card: CardName = Field(description="The card, by its name")
    amount_idr: Rupiah = Field(alias="amount", description="Amount in rupiah")
    nik: shaped_text(r"^(holder|[0-9]{16})$", 'a 16-digit NIK or "holder"', "holder") = Field(
        "holder", description='The NIK keyed in: "holder" for the card holder\'s own, or 16 digits'
    )


class CardAction(Spec):
    """A card lifecycle action at the issuing bank."""

    card: CardName = Field(description="The card, by its name")


class Replace(Spec):
    """The bank replaces a card; the new card gets a name for later steps."""

    card: CardName = Field(description="The card replaced, by its name")
    new_card_name: CardName = Field(alias="as", description="The name of the new card")
    pin: Pin | None = Field(None, description="The new card's PIN (default: the old card's)")


class PinReset(Spec):
    """The bank resets a card's PIN (and its wrong-PIN counter)."""

    card: CardName = Field(description="The card, by its name")
    pin: Pin = Field(description="The new PIN")


class ServiceTarget(BaseModel):
    """A service to stop, kill, pause, resume or restart: "switch", "bank bni" or "terminal BNI00001".

    With " after DURATION" (at most a minute) the step returns at once and the action lands that
    long later, during the next step: e.g. the switch killed while a purchase is in flight."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["switch", "bank", "terminal"]
    id: str | None = None  # bank code or terminal id
    after: timedelta | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, ServiceTarget):
            return value
        bad = PydanticCustomError(
            "service",
            'expecting "switch", "bank CODE" ({banks}) or "terminal TID", optionally followed by " after DURATION" '
            '(e.g. "switch after 1s"), got {got}',
            {"banks": ", ".join(BANK_CODES), "got": shown(value)},
        )
        if not isinstance(value, str):
            raise bad
        target, _, delay = value.partition(" after ")
        after = _service_delay(delay, bad) if delay else None
        words = target.split(" ")
        if words == ["switch"]:
            return {"kind": "switch", "after": after}
        if len(words) != 2 or words[0] not in ("bank", "terminal"):  # noqa: PLR2004
            raise bad
        kind, ident = words
        if (kind == "bank" and ident not in BANK_CODES) or (kind == "terminal" and not _is_tid(ident)):
            raise bad
        return {"kind": kind, "id": ident, "after": after}

    @property
    def name(self) -> str:
        """The service as written, without the delay: switch, bank bni, terminal BNI00001."""
        return self.kind if self.id is None else f"{self.kind} {self.id}"

    @model_serializer
    def _as_text(self) -> str:
        return self.name if self.after is None else f"{self.name} after {duration_text(self.after)}"

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: Any) -> JsonSchemaValue:
        target = f"(switch|bank ({'|'.join(BANK_CODES)})|terminal {TID_PATTERN[1:-1]})"
        return {"type": "string", "pattern": f"^{target}( after {DURATION_PATTERN[1:-1]})?$"}


def _service_delay(text: str, bad: PydanticCustomError) -> timedelta:
    try:
        delay = parse_duration(text)
    except ValueError:
        raise bad from None
    if not timedelta(0) < delay <= SERVICE_AFTER_MAX:
        raise PydanticCustomError(
            "service_after", "expecting a delay within (0s, {most}], got {got}", {"most": duration_text(SERVICE_AFTER_MAX), "got": shown(text)}
        )
    return delay


def _is_tid(text: str) -> bool:
    return re.fullmatch(TID_PATTERN, text) is not None


Direction = one_of(DIRECTIONS, "a direction")


class Steer(Spec):
    """Steer the next frame of a terminal's link in one direction."""

    terminal: Tid = Field(description="The terminal whose link is steered")
    direction: Direction = Field(description="to_switch (requests) or to_terminal (answers)")


class SteerDelay(Steer):
    """Hold the next frame of a terminal's link in one direction."""

    delay: duration(timedelta(milliseconds=STEER_DELAY_MS_MAX)) = Field(description="How long to hold it, e.g. 30s")

    @property
    def delay_ms(self) -> int:
        return round(self.delay.total_seconds() * 1000)


class SetProfile(Spec):
    """Play another link profile on a terminal's link from the next frame on."""

    terminal: Tid = Field(description="The terminal whose link changes")
    link: Link


# -- expectations ------------------------------------------------------------------------------------------


class TextCheck(Spec):
    """Texts that must (or must not) appear."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    contains: one_or_many(Text, CHECKS_MAX) | None = Field(None, description="Text (or list of texts) that must appear")
    not_contains: one_or_many(Text, CHECKS_MAX) | None = Field(None, description="Text (or list of texts) that must not appear")

    @model_validator(mode="after")
    def _something(self) -> TextCheck:
        _at_least_one(self, ("contains", "not_contains"), "a text check")
        return self


class JournalCheck(Spec):
    """The switch journal's record of a step's transaction."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["rc"]}, {"required": ["reversed"]}]})

    step: StepName | None = Field(None, description="The step whose transaction is checked (default: this step)")
    rc: one_or_many(Rc, CHECKS_MAX) | None = Field(None, description="Its response code, or one of several")
    reversed: StrictBool | None = Field(None, description="Whether it was reversed")

    @model_validator(mode="after")
    def _something(self) -> JournalCheck:
        _at_least_one(self, ("rc", "reversed"), "a journal check")
        return self


SAF_TEXT_PATTERN = r"^[0-9]+ within ([0-9]+(ms|d|h|m|s))+$"


class SafCheck(BaseModel):
    """Depth of the switch's store-and-forward queue: `0`, or `"0 within 5s"` to wait for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    depth: whole_number(0, 1_000_000)
    within: duration(SAF_WITHIN_MAX) | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_number_or_text(cls, value: Any) -> Any:
        if isinstance(value, SafCheck):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return {"depth": value}
        words = value.split(" within ") if isinstance(value, str) else []
        if len(words) == 2 and words[0].isdigit():  # noqa: PLR2004
            return {"depth": int(words[0]), "within": words[1]}
        raise PydanticCustomError(
            "saf", 'expecting a queue depth such as 0, or "0 within 5s", got {got}', {"got": shown(value)}
        )

    @model_serializer
    def _as_written(self) -> int | str:
        if self.within is None:
            return self.depth
        return f"{self.depth} within {duration_text(self.within)}"

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: Any) -> JsonSchemaValue:
        return {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SAF_TEXT_PATTERN}]}


ReportRowKey = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the explicit form
        Annotated[one_of((TOTAL_LABEL,), "a report row"), Tag(f"{TAG_PREFIX}total")],
        Annotated[dict[one_of(LEVELS, "a region column"), Text], Tag(f"{TAG_PREFIX}region")],
    ],
    Discriminator(lambda value: f"{TAG_PREFIX}region" if isinstance(value, dict) else f"{TAG_PREFIX}total"),
]


class BankReportCheck(Spec):
    """A row of a bank's operations report (bank_penyalur.reports) and the values it must show."""

    bank: BankCode = Field(description="The bank whose report is read")
    period: Period = Field(description="The report's period, YYYY-MM")
    level: one_of(LEVELS, "a report level") = Field("province", description="Grouping level of the report")
    row: ReportRowKey = Field(TOTAL_LABEL, description="TOTAL, or the region of the row (its columns down to the level)")
    values: dict[one_of(MEASURES, "a report measure"), whole_number(-(10**15), 10**15)] = Field(
        min_length=1, description="Measure -> exact value"
    )


ReconciliationValue = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the explicit form
        Annotated[StrictBool, Tag(f"{TAG_PREFIX}flag")],
        Annotated[whole_number(-(10**15), 10**15), Tag(f"{TAG_PREFIX}number")],
        Annotated[str, Tag(f"{TAG_PREFIX}text")],
        Annotated[tuple[str, ...], Field(max_length=CHECKS_MAX), Tag(f"{TAG_PREFIX}list")],
    ],
    Discriminator(
        lambda value: f"{TAG_PREFIX}flag"
        if isinstance(value, bool)
        else f"{TAG_PREFIX}text"
        if isinstance(value, str)
        else f"{TAG_PREFIX}list"
        if isinstance(value, (list, tuple))
        else f"{TAG_PREFIX}number"
    ),
]


class ReconciliationCheck(Spec):
    """A row of the reconciliation report (switch.reconciliation) of one terminal and day.

    Without `step` the row is the terminal's summary (columns of `Summary`); with it, the line
    of that step's transaction (columns of `Line`; `kind` picks the reversal of a voided sale)."""

    tid: Tid = Field(description="The terminal")
    date: IsoDate | None = Field(None, description="Business day YYYY-MM-DD (default: the clock's day at this step)")
    step: StepName | None = Field(None, description="The step whose transaction's line is checked (default: the summary)")
    kind: one_of(RECONCILIATION_KINDS, "a line kind") | None = Field(
        None, description="purchase, advice or reversal (default: the step's own transaction)"
    )
    values: dict[one_of(tuple(dict.fromkeys(SUMMARY_COLUMNS + LINE_COLUMNS)), "a reconciliation column"), ReconciliationValue] = Field(
        min_length=1, description="Column -> exact value"
    )


class Condition(Spec):
    """Facts of the network that can be checked at any time (and waited for)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    balance: dict[CardName, SignedRupiah] | None = Field(
        None, max_length=PEOPLE_MAX, description="Card name -> exact e-money balance in rupiah, as the bank holds it"
    )
    saf: SafCheck | None = Field(None, description='Pending store-and-forward reversals at the switch: 0, or "0 within 5s"')
    journal: JournalCheck | None = Field(None, description="The switch journal's record of a step's transaction")
    bank_report: tuple[BankReportCheck, ...] | None = Field(
        None, max_length=CHECKS_MAX, description="Rows of bank operations reports"
    )
    reconciliation: tuple[ReconciliationCheck, ...] | None = Field(
        None, max_length=CHECKS_MAX, description="Rows of reconciliation reports"
    )
    ledger: Literal["balanced"] | None = Field(None, description="`balanced`: every bank's ledger sums to zero")
    stock: dict[Tid, dict[DemoSku, whole_number(0, STOCK_QUANTITY_MAX)]] | None = Field(
        None,
        max_length=TERMINALS_MAX,
        description="Terminal -> SKU -> units on the shelf of its e-Warong (the POS books), e.g. {BNI00001: {BRS-MED: 45}}",
    )

    @model_validator(mode="after")
    def _something(self) -> Condition:
        _at_least_one(self, tuple(self.__class__.model_fields), _CHECK_WORDS.get(self.__class__.__name__, "a check"))
        return self


class Expect(Condition):
    """What must hold after a step."""

    rc: one_or_many(Rc, CHECKS_MAX) | None = Field(None, description="The response code the terminal got, or one of several")
    approved: StrictBool | None = Field(None, description="Whether the transaction was approved")
    sent: StrictBool | None = Field(
        None,
        description="Whether the transaction went out to the switch (false: the terminal or the shop refused it first, "
        "or the terminal decided it offline)",
    )
    slip: TextCheck | None = Field(None, description="The printed slip (receipt)")
    screen: TextCheck | None = Field(None, description="The cashier app's screen")


_CHECK_WORDS = {"Condition": "a wait condition", "Expect": "an expect block"}
TRANSACTION_CHECKS: tuple[str, ...] = ("rc", "approved", "sent", "slip", "screen")


class Wait(Spec):
    """Wait, bounded, until a condition holds; the scenario fails if it does not in time."""

    until: Condition = Field(description="The condition")
    within: duration(WAIT_MAX) = Field(description="The bound, e.g. 10s")


# -- steps -------------------------------------------------------------------------------------------------

TRANSACTION_ACTIONS: tuple[str, ...] = (
    "cek", "bayar", "cart", "tarik_tunai", "reversal", "offline_sale", "upload", "settle", "signon",
)
# Actions that make one transaction of their own, which the switch journals (or, offline, the
# upload does): what a journal or reconciliation check can name.
JOURNALLED_ACTIONS: tuple[str, ...] = ("cek", "bayar", "cart", "tarik_tunai", "reversal", "offline_sale")
CARD_ACTIONS: tuple[str, ...] = ("block", "report_lost", "replace", "pin_reset")
SERVICE_ACTIONS: tuple[str, ...] = ("stop", "kill", "pause", "resume", "restart")
PROCESS_ACTIONS: tuple[str, ...] = ("pause", "resume")  # for services that are processes: banks, the switch
LINK_ACTIONS: tuple[str, ...] = ("drop_next", "delay_next", "duplicate_next", "cut", "heal", "set_profile")
ACTIONS: tuple[str, ...] = (
    "disburse",
    *TRANSACTION_ACTIONS,
    *CARD_ACTIONS,
    *SERVICE_ACTIONS,
    *LINK_ACTIONS,
    "advance",
    "wait",
)


class Step(Spec):
    """One step: an optional name, exactly one action and optional expectations."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": [action]} for action in ACTIONS]})

    name: StepName | None = Field(None, description="A name for reports and for references from later checks")
    disburse: Disburse | None = Field(None, description="Disburse a period's benefit")
    cek: Cek | None = Field(None, description="Balance inquiry")
    bayar: Bayar | None = Field(None, description="Purchase of an amount")
    cart: Cart | None = Field(None, description="Purchase of a cart at the e-Warong POS")
    tarik_tunai: TarikTunai | None = Field(None, description="Cash withdrawal attempt (refused: the benefit is food only)")
    reversal: TerminalAction | None = Field(None, description="Void (reverse) the terminal's last purchase")
    offline_sale: OfflineSale | None = Field(None, description="A sale decided offline by the terminal")
    upload: TerminalAction | None = Field(None, description="The terminal uploads its stored offline sales")
    settle: TerminalAction | None = Field(None, description="The terminal settles its open batch")
    signon: TerminalAction | None = Field(None, description="The terminal signs on (keys, hot list, card list)")
    block: CardAction | None = Field(None, description="The bank blocks the card")
    report_lost: CardAction | None = Field(None, description="The KPM reports the card lost at the bank")
    replace: Replace | None = Field(None, description="The bank replaces the card with a new one")
    pin_reset: PinReset | None = Field(None, description="The bank resets the card's PIN")
    stop: ServiceTarget | None = Field(
        None,
        description='Stop a service cleanly: "switch", "bank bni", "terminal BNI00001"; a bank or the switch may take a '
        'delay, "switch after 1s": the action then lands during the next step',
    )
    kill: ServiceTarget | None = Field(None, description='Kill a service abruptly (no clean shutdown), e.g. "switch after 1s"')
    pause: ServiceTarget | None = Field(
        None, description='Freeze a bank or the switch (SIGSTOP): it hangs, holding its connections, until "resume"'
    )
    resume: ServiceTarget | None = Field(None, description="Let a paused bank or switch carry on (SIGCONT)")
    restart: ServiceTarget | None = Field(None, description="Start a stopped or killed service again")
    drop_next: Steer | None = Field(None, description="Lose the next frame on a terminal's link")
    delay_next: SteerDelay | None = Field(None, description="Hold the next frame on a terminal's link")
    duplicate_next: Steer | None = Field(None, description="Deliver the next frame on a terminal's link twice")
    cut: TerminalAction | None = Field(None, description="Cut a terminal's link (connections closed and refused)")
    heal: TerminalAction | None = Field(
        None,
        description="Heal a terminal's link: connections accepted again after a cut, and drop/delay/duplicate requests not yet used forgotten",
    )
    set_profile: SetProfile | None = Field(None, description="Play another profile on a terminal's link")
    advance: duration(ADVANCE_MAX, timedelta(milliseconds=1)) | None = Field(
        None, description='Advance the injected clock, e.g. "91d", "2h", "30m", "45s"'
    )
    wait: Wait | None = Field(None, description="Wait (bounded) until a condition holds")
    expect: Expect | None = Field(None, description="What must hold after the action")

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        given = [action for action in ACTIONS if getattr(self, action) is not None]
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise PydanticCustomError(
                "step_action",
                "a step has exactly one action ({actions}); {found}",
                {"actions": ", ".join(ACTIONS), "found": found},
            )
        return self

    @property
    def action(self) -> str:
        """The key of this step's action, e.g. "bayar"."""
        return next(action for action in ACTIONS if getattr(self, action) is not None)

    @property
    def params(self) -> Any:
        """The value of this step's action (a model, or a timedelta for `advance`)."""
        return getattr(self, self.action)


class Scenario(Spec):
    """A replayable field-failure scenario of the Sembako network."""

    name: ScenarioName = Field(description="Short identifier, e.g. zero-balance")
    problem: Text = Field(description="The field problem this scenario reproduces, in plain words")
    cites: one_or_many(Text, CHECKS_MAX) = Field(
        description="Where the problem is documented: field reports, DESIGN.md sections"
    )
    network: Network = Field(description="Banks, terminals and their links, seed and start time")
    people: tuple[CardSpec, ...] = Field((), max_length=PEOPLE_MAX, description="KPM cards used by the steps")
    steps: tuple[Step, ...] = Field(min_length=1, max_length=STEPS_MAX, description="What happens, in order")


# -- the published schema ----------------------------------------------------------------------------------


class _SchemaGenerator(GenerateJsonSchema):
    """No part of the format takes null: optional keys are simply left out."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])



def _tidy(node: Any) -> Any:
    """No `default: null` (null is never allowed), and a title on every key, models included."""
    if isinstance(node, list):
        return [_tidy(value) for value in node]
    if not isinstance(node, dict):
        return node
    tidy = {key: _tidy(value) for key, value in node.items() if not (key == "default" and value is None)}
    if isinstance(tidy.get("properties"), dict) and tidy.get("type") == "object":
        for key, prop in tidy["properties"].items():
            prop.setdefault("title", key.replace("_", " ").title())
    return tidy


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema = _tidy(
        Scenario.model_json_schema(by_alias=True, mode="validation", schema_generator=_SchemaGenerator)
    )
    head = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID}
    first = ("title", "description", "type", "properties", "required", "additionalProperties")
    return head | {key: schema[key] for key in first if key in schema} | schema
