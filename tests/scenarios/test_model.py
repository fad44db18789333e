"""The models as the runner reads them: typed values (timedelta, naive WIB datetime, tuples of
response codes, LinkProfile), the action of a step, and the value types' own checks."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from linksim.profiles import VSAT, LinkProfile
from scenarios.loader import parse_scenario
from scenarios.model import CustomLink, ServiceTarget, StockItem, link_profile
from scenarios.values import duration_text, parse_duration

from .helpers import HEAD


def scenario_with(steps: str, head: str = HEAD):  # noqa: ANN201
    return parse_scenario(head + steps, "test.yaml")


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("91d", timedelta(days=91)),
        ("2h", timedelta(hours=2)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("1500ms", timedelta(milliseconds=1500)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta
    assert parse_duration(duration_text(delta)) == delta


@pytest.mark.parametrize("text", ["", "5", "5 s", "-5s", "1.5h", "5sec", "h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_a_step_knows_its_action_and_values() -> None:
    scenario = scenario_with(
        '  - name: beli\n    bayar: {card: siti, terminal: BNI00001, amount: 10000, pin: "000000"}\n'
        '    expect: {rc: "55", saf: "0 within 5s", slip: {contains: PIN}}\n'
        "  - advance: 91d\n"
        "  - delay_next: {terminal: BNI00001, direction: to_terminal, delay: 30s}\n"
        "  - restart: terminal BNI00001\n"
    )
    pay, advance, delay, restart = scenario.steps
    assert (pay.name, pay.action, pay.params.amount_idr, pay.params.pin) == ("beli", "bayar", 10_000, "000000")
    assert pay.expect.rc == ("55",)
    assert pay.expect.slip.contains == ("PIN",)
    assert (pay.expect.saf.depth, pay.expect.saf.within) == (0, timedelta(seconds=5))
    assert (advance.action, advance.params) == ("advance", timedelta(days=91))
    assert delay.params.delay_ms == 30_000
    assert isinstance(restart.params, ServiceTarget)
    assert (restart.params.kind, restart.params.id) == ("terminal", "BNI00001")
    assert scenario.network.start == datetime(2026, 11, 3, 9, 0, 0)


@pytest.mark.parametrize("written", ['"2026-11-03T09:00:00+07:00"', "2026-11-03T09:00:00", "2026-11-03 09:00:00+07:00"])
def test_start_is_naive_wib(written: str) -> None:
    head = HEAD.replace('"2026-11-03T09:00:00"', written)
    assert scenario_with("  - advance: 1s\n", head).network.start == datetime(2026, 11, 3, 9, 0, 0)


@pytest.mark.parametrize(("written", "fragment"), [("2026-11-03T02:00:00Z", "WIB"), ("2026-11-03", "only a date"), ("09:00", "ISO date")])
def test_start_other_than_wib_is_refused(written: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=r"network\.start: .*" + fragment):
        scenario_with("  - advance: 1s\n", HEAD.replace('"2026-11-03T09:00:00"', written))


def test_links_become_link_profiles() -> None:
    head = HEAD.replace(
        "    - tid: BNI00001\n",
        "    - tid: BNI00001\n      link: vsat\n      link_seed: 9\n"
        "    - tid: BNI00002\n      link: {rtt_ms: 800, jitter_ms: 200, loss: 0.05}\n"
        "      stock: {BRS-MED: 5, TLR-AYM: {quantity: 10, price: 1900}}\n",
    )
    first, second = scenario_with("  - advance: 1s\n", head).network.terminals
    assert link_profile(first.link) is VSAT
    assert first.link_seed == 9
    assert link_profile(second.link) == LinkProfile("custom", rtt_ms=800, jitter_ms=200, loss=0.05)
    assert isinstance(second.link, CustomLink)
    assert second.stock == {"BRS-MED": StockItem(quantity=5), "TLR-AYM": StockItem(quantity=10, price=1900)}


def test_people_demo_and_new_cards() -> None:
    head = HEAD.replace(
        "    demo: normal\n",
        "    demo: normal\n  - as: budi\n    bank: bni\n    new: replaced\n    name: Budi\n"
        '    pin: "135790"\n    replacement_as: budi_baru\n  - as: budi_dua\n    bank: bni\n    new: normal\n    same_kpm_as: budi\n',
    )
    scenario = scenario_with("  - cek: {card: budi_baru, terminal: BNI00001}\n", head)
    siti, budi, budi_dua = scenario.people
    assert (siti.card_name, siti.demo, siti.new) == ("siti", "normal", None)
    assert (budi.new, budi.kpm_name, budi.pin, budi.replacement_as) == ("replaced", "Budi", "135790", "budi_baru")
    assert budi_dua.same_kpm_as == "budi"


def test_a_card_is_demo_or_new() -> None:
    head = HEAD.replace("    demo: normal\n", "    demo: normal\n    new: lost\n")
    with pytest.raises(ValueError, match=r"people\[0\]: a card is either demo: LABEL or new: SITUATION"):
        scenario_with("  - advance: 1s\n", head)


def test_one_or_many_response_codes_and_texts() -> None:
    steps = '  - cek: {card: siti, terminal: BNI00001}\n    expect: {rc: ["91", "96"], screen: {not_contains: [a, b]}}\n'
    expect = scenario_with(steps).steps[0].expect
    assert expect.rc == ("91", "96")
    assert expect.screen.not_contains == ("a", "b")
