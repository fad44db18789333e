"""Demo data is deterministic, realistic and matches the published demo-card fixture."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.cards import luhn_valid

from bank_penyalur import registry, store
from shared.banks import BANKS, get_bank
from bank_penyalur.demo import fixture, generator
from bank_penyalur.registry import valid_id_number
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import Card, Kpm

BNI = get_bank("bni")


def test_generated_kpm_are_the_same_on_every_call() -> None:
    assert generator.generated_kpm(BNI, 123) == generator.generated_kpm(BNI, 123)
    assert generator.generated_kpm(BNI, 123) != generator.generated_kpm(BNI, 124)


def test_generated_kpm_look_like_real_records() -> None:
    people = [generator.generated_kpm(BNI, i) for i in range(2_000)]
    assert len({p.record.nik for p in people}) == len(people)
    assert len({p.pan for p in people}) == len(people)
    assert all(valid_id_number(p.record.nik) and luhn_valid(p.pan) for p in people)
    assert all(p.pan.startswith(BNI.iin) and len(p.pin) == 6 for p in people)
    assert 0.2 < sum(p.record.pkh for p in people) / len(people) < 0.4
    assert 0 < sum(not p.emoney for p in people) < 60


def test_nik_stay_unique_far_into_a_million() -> None:
    indices = list(range(999_000, 1_000_000)) + list(range(0, 1_000))
    assert len({generator.generated_kpm(BNI, i).record.nik for i in indices}) == len(indices)


def test_more_than_a_million_is_refused(tmp_path, clock) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=r"\[0, 1000000\)"):
        generator.generated_kpm(BNI, 1_000_000)
    runtime = BankRuntime.start(BankSettings(bank="bni", data_dir=tmp_path), clock=clock)
    try:
        with pytest.raises(ValueError, match="1,000,000"):
            generator.seed(runtime.db, BNI, runtime.hsm, clock, kpm=1_000_001)
    finally:
        runtime.close()


def test_demo_cards_fixture_lists_every_situation_for_every_bank() -> None:
    cards = fixture.all_demo_cards()
    assert len(cards) == 9 * len(BANKS)
    labels = {c.label for c in cards}
    assert {"normal", "zero_balance", "no_emoney", "pin_blocked", "lost", "replaced_new", "pkh_combo"} <= labels
    assert all(luhn_valid(c.pan) and len(c.pin) == 6 for c in cards)


@pytest.fixture
def seeded(storage, clock):  # noqa: ANN001, ANN201
    runtime = BankRuntime.start(BankSettings(bank="mandiri", **storage), clock=clock)
    generator.seed(runtime.db, runtime.bank, runtime.hsm, clock, kpm=25)
    yield runtime
    runtime.close()


def test_the_bank_holds_the_fixture_cards_with_their_pins(seeded) -> None:  # noqa: ANN001
    expected_status = {"lost": "lost", "blocked": "blocked", "replaced_old": "replaced"}
    with seeded.db.read() as conn:
        for card in fixture.demo_cards(seeded.bank):
            record = registry.card_record(conn, seeded.hsm, card.pan)
            assert record is not None, card.label
            assert record.status == expected_status.get(card.label, "activated"), card.label
            state = store.card_state(conn, seeded.hsm.pan_ref(card.pan))
            assert seeded.hsm.verify(card.pan, seeded.hsm.encipher_pin(card.pan, card.pin), state.pvv)


def test_generated_cards_carry_their_published_pins(seeded) -> None:  # noqa: ANN001
    with seeded.db.read() as conn:
        for index in range(25):
            person = generator.generated_kpm(seeded.bank, index)
            state = store.card_state(conn, seeded.hsm.pan_ref(person.pan))
            assert state is not None
            if person.activated:
                assert seeded.hsm.verify(person.pan, seeded.hsm.encipher_pin(person.pan, person.pin), state.pvv)
            else:
                assert state.status == "distributed" and state.pvv is None


def test_seeding_again_adds_only_what_is_missing(seeded) -> None:  # noqa: ANN001
    again = generator.seed(seeded.db, seeded.bank, seeded.hsm, seeded.clock, kpm=25)
    assert (again.merchants, again.named_cards, again.generated_kpm) == (0, 0, 0)
    more = generator.seed(seeded.db, seeded.bank, seeded.hsm, seeded.clock, kpm=30)
    assert more.generated_kpm == 5
    with seeded.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(Kpm)).scalar_one() == 30 + fixture.NAMED_KPM
        assert conn.execute(select(func.count()).select_from(Card)).scalar_one() == 30 + fixture.NAMED_CARDS
    person = generator.generated_kpm(seeded.bank, 29)
    with seeded.db.read() as conn:
        assert store.card_state(conn, seeded.hsm.pan_ref(person.pan)) is not None
