"""`sembako simulate`: the same seed draws the same workload; a bounded run with every fault
passes the money auditor and the simulator's own invariants; a planted fault (a purchase's
posting deleted at the bank behind the switch's back) is caught, replayed alone and shrunk to a
shorter replay that still breaks the same rule; bad options are refused clearly."""

from __future__ import annotations

import json

from sqlalchemy import delete
from typer.testing import CliRunner

from bank_penyalur.runtime import database_for
from bank_penyalur.tables import AuthRequest
from scenarios.runner import StepResult
from scenarios.simulate import (
    BANKS,
    BENEFIT_IDR,
    FAULTS,
    SimOptions,
    build_scenario,
    generate,
    parse_faults,
    place,
    run_only,
    run_seeds,
)
from sembako.cli import app


def cli(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["simulate", *args], env={"COLUMNS": "200"})


def actions(ops: tuple[dict, ...]) -> list[str]:
    return [next(iter(op)) for op in ops]


def test_the_same_seed_generates_the_same_workload() -> None:
    first, again, other = generate(42, 30, FAULTS), generate(42, 30, FAULTS), generate(43, 30, FAULTS)

    assert first == again
    assert first.ops != other.ops
    assert len(first.ops) == 30
    assert build_scenario([place(first, 0)]) == build_scenario([place(again, 0)])


def test_only_the_enabled_faults_are_drawn() -> None:
    drawn = {a for seed in range(40) for a in actions(generate(seed, 20, ("drop",)).ops)}
    assert "drop_next" in drawn
    assert not drawn & {"kill", "duplicate_next", "delay_next", "restart"}
    everything = {a for seed in range(40) for a in actions(generate(seed, 20, FAULTS).ops)}
    assert {"drop_next", "duplicate_next", "delay_next", "kill", "restart", "bayar", "cek", "reversal", "offline_sale", "disburse"} <= everything
    assert not {a for seed in range(40) for a in actions(generate(seed, 20, ()).ops)} & {"kill", "drop_next"}


def test_a_subset_is_made_playable_and_sealed() -> None:
    seed = next(s for s in range(500) if "kill" in actions(generate(s, 12, ("kill",)).ops))
    workload = generate(seed, 12, ("kill",))
    kill = actions(workload.ops).index("kill")
    placed = place(workload, 3, only=[kill])
    steps = [next(iter(step)) for step in placed.steps]
    target = workload.ops[kill]["kill"].split(" after ")[0]

    assert placed.origins[0] == kill
    assert {"restart": target} in placed.steps  # the seal restarts what the subset left down
    assert steps[-1] == "wait" and placed.tid.endswith("00004")
    build_scenario([placed])  # a valid scenario


def test_bad_options_are_refused_clearly() -> None:
    for args, message in (
        (["--faults", "drop,boom"], "unknown fault(s) boom"),
        (["--steps", "0"], "--steps must be within 1..300"),
        (["--steps", "5", "--only", "9"], "outside 1..5"),
        (["--only", "1,x"], "step numbers separated by commas"),
        (["--seeds", "3", "--only", "1"], "--only replays one seed"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)  # noqa: PLR2004
        assert message in result.output, (args, result.output)
    assert parse_faults("all") == FAULTS and parse_faults("none") == ()


def test_a_bounded_run_with_every_fault_passes() -> None:
    result = cli("--seed", "1", "--seeds", "6", "--steps", "12", "--faults", "all", "--jobs", "2", "--json")

    summary = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(summary["failures"], indent=1)
    assert summary["seeds_run"] == 6 and summary["passed"] == 6 and summary["failed"] == 0  # noqa: PLR2004
    assert summary["seeds_per_s"] > 0


# -- a planted fault --------------------------------------------------------------------------------


async def lose_purchase_postings(player, record: StepResult) -> None:  # noqa: ANN001
    """The planted fault: every approved purchase's posting record vanishes at its bank (a
    direct write to the bank's database), as a bank losing a posting would."""
    txn = record.txn
    if record.action != "bayar" or txn is None or not txn.approved or not txn.rrn:
        return
    card = player.cards[player.scenario.steps[record.index].bayar.card]
    db = database_for(player.network.bank_settings(card.bank))
    try:
        with db.begin() as conn:
            conn.execute(delete(AuthRequest).where(AuthRequest.rrn == txn.rrn, AuthRequest.op == "purchase"))
    finally:
        db.dispose()


def _funded_purchase_second(seed: int) -> bool:
    """The workload disburses first and then buys within the benefit with the right PIN."""
    workload = generate(seed, 5, ())
    first, second = workload.ops[0], workload.ops[1]
    if "disburse" not in first or "bayar" not in second or "pin" in second["bayar"]:
        return False
    card = next(c for c in workload.cards if c.name == second["bayar"]["card"])
    return first["disburse"].get("bank", card.bank) == card.bank and second["bayar"]["amount"] <= BENEFIT_IDR


def test_a_planted_fault_is_caught_and_shrunk() -> None:
    seed = next(s for s in range(1_000) if _funded_purchase_second(s))
    options = SimOptions(steps=5, faults=(), shrink_replays_max=3, tamper=lose_purchase_postings)

    [result] = run_seeds([seed], options)

    failure = result.failure
    assert not result.passed and failure is not None
    assert failure.step == f"seed {seed} step 3 {next(iter(generate(seed, 5, ()).ops[2]))}"  # the next audit sees it
    assert failure.invariant == "audit: slip"
    assert "posted purchase(s) at bank" in failure.detail
    assert failure.replay == f"sembako simulate --seed {seed} --steps 5 --faults none"
    assert failure.reproduced_alone is True
    assert failure.shrunk_steps == [1, 2]  # the disbursement and the purchase: nothing else matters
    assert failure.shrunk_replay == f"{failure.replay} --only 1,2"
    assert set(BANKS) >= {c.bank for c in generate(seed, 5, ()).cards}


def test_a_reversal_overtaking_its_purchase_at_the_switch_is_linked_to_it() -> None:
    """Found by seed 6: the purchase held 4 s on the link, the terminal gives up after 2.5 s and
    reverses; both reach the switch together and the reversal must not be journalled unlinked
    (the journal then kept the purchase as money moved while the bank had given it back)."""
    workload = generate(6, 12, FAULTS)
    assert workload.ops[5] == {"delay_next": {"terminal": "@T", "direction": "to_switch", "delay": "4s"}}
    assert "bayar" in workload.ops[6] and "disburse" in workload.ops[0]

    result = run_only(6, [0, 5, 6], SimOptions(steps=12, faults=FAULTS, shrink=False))

    assert result.passed, result.failure


def test_steers_no_frame_used_up_are_forgotten_before_the_seal() -> None:
    """Found by seed 2634 of the 10,000-seed run: two drops to the terminal, a void with nothing
    to void and an offline sale left both drops unused; the seal's sign-on ran while the link was
    still offline, so the drops took the seal's Cek and its upload, and the offline sale stayed
    undelivered. The seal now heals the link, which forgets unused steers."""
    workload = generate(2634, 12, FAULTS)
    only = [6, 8, 9, 10, 11]
    assert [workload.ops[i] for i in only[:2]] == [{"drop_next": {"terminal": "@T", "direction": "to_terminal"}}] * 2
    assert actions(workload.ops)[9:12] == ["reversal", "set_profile", "offline_sale"]
    assert {"heal": {"terminal": "BRI00001"}} in place(workload, 0, only).steps

    result = run_only(2634, only, SimOptions(steps=12, faults=FAULTS, shrink=False))

    assert result.passed, result.failure
