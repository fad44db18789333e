"""The lesson format: a scenario's network and people, then guided steps and a short check.

A lesson reuses the scenario format (`scenarios.model`) for its world: `network` (banks, the one
terminal, its link and shelf), `people` (KPM cards in their situations) and `setup` (scenario
steps played before the lesson starts, e.g. the month's disbursement or a link gone offline).
Then come the lesson's own `steps`, each with the guidance a pendamping gives (in Bahasa
Indonesia): what to do now (`do`), the event that ends the step (`until`), and for its outcome
what just happened, what the response code means and what the KPM should do next (`then`). A
step may change the world when it begins (`world`: scenario steps such as dropping the next
answer on the link). The lesson ends with two or three multiple-choice questions (`check`).

Texts may name a card's facts as `{NAME.kks}`, `{NAME.kks_masked}`, `{NAME.pin}`, `{NAME.nik}`
and `{NAME.nama}`, NAME being a card of `people` (or one a `replace` step issues).
Unknown keys and nulls are refused everywhere, as in scenario files.
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from scenarios.model import TRANSACTION_ACTIONS, CardSpec, Network, Scenario, Spec, Step
from scenarios.values import CardName, Rc, ScenarioName, free_text, one_of, one_or_many, whole_number

LESSON_STEPS_MAX = 20
WORLD_STEPS_MAX = 10
QUESTIONS_MIN, QUESTIONS_MAX = 2, 3
CHOICES_MIN, CHOICES_MAX = 2, 4
TITLE_CHARS_MAX = 80
CARD_FACTS: tuple[str, ...] = ("kks", "kks_masked", "pin", "nik", "nama")

# What the lesson hears from the counter and its EDC (see `training.events`).
CARD_INSERTED = "card_inserted"
CARD_TAKEN = "card_taken"
BALANCE = "balance"  # a Cek answered (or not)
PURCHASE = "purchase"  # a Bayar decided online (approved, declined, or reversed for want of an answer)
OFFLINE_SALE = "offline_sale"  # a Bayar the EDC decided offline (card, NIK)
REVERSAL = "reversal"  # PEMBATALAN of the last purchase
UPLOAD = "upload"  # KIRIM OFFLINE: the stored offline sales sent
SETTLEMENT = "settlement"
SIGN_ON = "sign_on"
CART_ITEM = "cart_item"  # goods went into the cart
CART_REFUSED = "cart_refused"  # the shop's rules refused goods (`refusal` says why)
PAYMENT_STARTED = "payment_started"  # Bayar: the cart total went to the EDC
EVENTS: tuple[str, ...] = (
    CARD_INSERTED, CARD_TAKEN, BALANCE, PURCHASE, OFFLINE_SALE, REVERSAL, UPLOAD, SETTLEMENT, SIGN_ON,
    CART_ITEM, CART_REFUSED, PAYMENT_STARTED,
)  # fmt: skip
# `ewarong_pos.rules` refusal codes a lesson may wait for.
REFUSALS: tuple[str, ...] = ("forbidden", "cash_out", "not_food", "above_het", "stock", "balance", "quantity")

Title = free_text(TITLE_CHARS_MAX)
Text = free_text()


class Until(Spec):
    """The event that ends a step, and what it must carry."""

    event: one_of(EVENTS, "a lesson event") = Field(description="What happens at the counter or on the EDC")
    rc: one_or_many(Rc, 10) | None = Field(None, description="The response code, or one of several")
    approved: StrictBool | None = Field(None, description="Whether the EDC approved it")
    reversed: StrictBool | None = Field(None, description="A purchase reversed for want of an answer")
    refusal: one_of(REFUSALS, "a refusal code") | None = Field(None, description="cart_refused: why the goods were refused")
    card: CardName | None = Field(None, description="card_inserted: which card")


class Then(Spec):
    """The guidance shown once the step's event has happened."""

    happened: Text = Field(description="What just happened, in plain words")
    rc: Text | None = Field(None, description="What the response code means (default: the network's RC text)")
    kpm_next: Text | None = Field(None, description="What the KPM should do next (default: the network's advice for the RC)")


class LessonStep(Spec):
    """One step of the lesson: what to do, the event that ends it, what to say after."""

    title: Title = Field(description="Short title, e.g. Cek saldo")
    do: Text = Field(description="What to do now")
    world: tuple[Step, ...] = Field((), max_length=WORLD_STEPS_MAX, description="Scenario steps played as this step begins")
    until: Until
    then: Then


class Question(Spec):
    """A multiple-choice question of the end check."""

    question: Text
    choices: tuple[Text, ...] = Field(min_length=CHOICES_MIN, max_length=CHOICES_MAX)
    answer: whole_number(1, CHOICES_MAX, "the number of the right choice (1 is the first)")


class Lesson(Spec):
    """A guided lesson for pendamping, played in the cashier app on a sandbox network."""

    id: ScenarioName = Field(description="Lower-case id, e.g. pembelian-normal")
    order: whole_number(1, 99, "the lesson's place in the list")
    title: Title
    summary: Text
    kpm: CardName = Field(description="The card the KPM brings to the counter (a card of people)")
    network: Network
    people: tuple[CardSpec, ...] = Field(min_length=1, max_length=10)
    setup: tuple[Step, ...] = Field(min_length=1, max_length=WORLD_STEPS_MAX, description="Scenario steps before the lesson")
    steps: tuple[LessonStep, ...] = Field(min_length=1, max_length=LESSON_STEPS_MAX)
    check: tuple[Question, ...] = Field(min_length=QUESTIONS_MIN, max_length=QUESTIONS_MAX)

    @property
    def terminal_id(self) -> str:
        return self.network.terminals[0].tid

    def world_steps(self) -> list[tuple[tuple[str | int, ...], Step]]:
        """Every scenario step of the lesson in the order it plays, with where the file has it."""
        found: list[tuple[tuple[str | int, ...], Step]] = [(("setup", i), step) for i, step in enumerate(self.setup)]
        for index, lesson_step in enumerate(self.steps):
            found += [(("steps", index, "world", i), step) for i, step in enumerate(lesson_step.world)]
        return found

    def scenario(self) -> Scenario:
        """The lesson's world as a scenario: network, people, and every setup and world step
        in the order they play (the runner plays the setup; the lesson the rest, step by step)."""
        return Scenario.model_validate(
            {
                "name": self.id,
                "problem": self.summary,
                "cites": f"training lesson {self.id}",
                "network": self.network,
                "people": self.people,
                "steps": [step for _, step in self.world_steps()],
            }
        )

    def card_names(self) -> set[str]:
        """Cards the lesson can name: people, their replacements, and cards a `replace` issues."""
        names = {card.card_name for card in self.people}
        names |= {card.replacement_as for card in self.people if card.replacement_as}
        names |= {step.replace.new_card_name for _, step in self.world_steps() if step.replace is not None}
        return names

    def texts(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every guidance text, with where it is."""
        found: list[tuple[tuple[str | int, ...], str]] = [(("summary",), self.summary)]
        for index, step in enumerate(self.steps):
            found.append((("steps", index, "do"), step.do))
            for key in ("happened", "rc", "kpm_next"):
                value = getattr(step.then, key)
                if value is not None:
                    found.append((("steps", index, "then", key), value))
        return found


def terminal_actions_in(step: Step) -> str | None:
    """The action of `step` if it would use the EDC, which belongs to the participant."""
    return step.action if step.action in TRANSACTION_ACTIONS else None

