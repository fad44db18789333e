"""A broken scenario file gets errors naming the file, line, column and the path of keys, and
never a traceback: wrong types, unknown and duplicate keys, float money, YAML syntax, names not
defined (or defined later), and inputs past the bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.loader import (
    DEPTH_MAX,
    FILE_BYTES_MAX,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from scenarios.model import STEPS_MAX

from .helpers import FIRST_STEP_LINE, HEAD, VALID_STEP, errors_of, only_error, write


def test_float_money_points_at_the_amount_key(tmp_path: Path) -> None:
    text = HEAD + VALID_STEP + '  - disburse: {period: "2026-11", amount: 150000}\n' + (
        "  - bayar:\n      card: siti\n      terminal: BNI00001\n      amount: 10.5\n"
    )
    error = only_error(tmp_path, text, "zero.yaml")
    line = FIRST_STEP_LINE + 5
    assert str(error).startswith(
        f"{tmp_path / 'zero.yaml'}:{line}:7: steps[2].bayar.amount: expecting a whole number of rupiah, got 10.5"
    )
    assert (error.line, error.column, error.path) == (line, 7, "steps[2].bayar.amount")
    assert error.file == str(tmp_path / "zero.yaml")


@pytest.mark.parametrize(
    ("written", "shown"),
    [('"10.000"', '"10.000"'), ("10.000", "10.0"), ('"10000"', '"10000"'), ("true", "true"), ("1e4", '"1e4"')],
)
def test_money_is_a_plain_integer(tmp_path: Path, written: str, shown: str) -> None:
    text = HEAD + f"  - bayar: {{card: siti, terminal: BNI00001, amount: {written}}}\n"
    error = only_error(tmp_path, text)
    assert error.path == "steps[0].bayar.amount"
    assert error.message.startswith(f"expecting a whole number of rupiah, got {shown}")


def test_a_negative_amount_is_refused(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - bayar: {card: siti, terminal: BNI00001, amount: -5}\n")
    assert "expecting rupiah within [0, " in error.message


def test_unknown_key_names_the_keys_that_are_allowed(tmp_path: Path) -> None:
    text = HEAD + "  - bayar:\n      card: siti\n      terminal: BNI00001\n      amount: 1000\n      amonut: 5\n"
    error = only_error(tmp_path, text)
    assert (error.line, error.column) == (FIRST_STEP_LINE + 4, 7)
    assert error.path == "steps[0].bayar.amonut"
    assert error.message == 'unknown key "amonut"; expected one of: card, terminal, amount, pin'


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = only_error(tmp_path, "author: me\n" + HEAD + VALID_STEP)
    assert (error.line, error.column, error.path) == (1, 1, "author")
    assert error.message.startswith('unknown key "author"; expected one of: name, problem, cites')


def test_duplicate_key_is_an_error_at_the_second_one(tmp_path: Path) -> None:
    text = HEAD + "  - bayar:\n      card: siti\n      card: siti\n      terminal: BNI00001\n      amount: 1\n"
    error = only_error(tmp_path, text)
    assert (error.line, error.column) == (FIRST_STEP_LINE + 2, 7)
    assert error.message == f'duplicate key "card" (first at line {FIRST_STEP_LINE + 1})'


def test_yaml_syntax_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - bayar: {card: siti, terminal: BNI00001\n")
    assert error.line == FIRST_STEP_LINE + 1
    assert error.message.startswith("not valid YAML:")


def test_wrong_types(tmp_path: Path) -> None:
    text = HEAD.replace("    - tid: BNI00001\n", "").replace("  terminals:\n", "  terminals: BNI00001\n") + VALID_STEP
    errors = errors_of(tmp_path, text)
    assert [(e.line, e.path, e.message) for e in errors] == [
        (8, "network.terminals", 'expecting a list (- item lines), got "BNI00001"'),
    ]


def test_text_with_a_colon_gets_a_hint(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD.replace("cites: DESIGN.md", "cites:\n  - DESIGN.md: field reality") + VALID_STEP)
    assert (error.line, error.column, error.path) == (4, 5, "cites[0]")
    assert "put the text in quotes" in error.message


def test_missing_key_points_at_its_mapping(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - bayar: {card: siti, terminal: BNI00001}\n")
    assert (error.line, error.column) == (FIRST_STEP_LINE, 5)
    assert (error.path, error.message) == ("steps[0].bayar.amount", 'missing required key "amount"')


def test_null_is_not_a_value(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - cek: {card: siti, terminal: BNI00001, pin:}\n")
    assert error.path == "steps[0].cek.pin"
    assert error.message.startswith("expecting a value here, got nothing (null)")


@pytest.mark.parametrize(
    ("step", "path", "fragment"),
    [
        ("  - cek: {card: siti, terminal: BNI00001, pin: 123456}\n", "steps[0].cek.pin", 'quote it: "123456"'),
        ('  - bayar: {card: siti, terminal: BNI00001, amount: 1}\n    expect: {rc: 51}\n', "steps[0].expect.rc", 'such as "51"'),
        ('  - bayar: {card: siti, terminal: BNI00001, amount: 1}\n    expect: {rc: "99"}\n', "steps[0].expect.rc", "response code of DESIGN.md"),
        ("  - advance: 90\n", "steps[0].advance", 'such as "91d"'),
        ('  - advance: "500d"\n', "steps[0].advance", "within [1ms, 400d]"),
        ('  - disburse: {period: "2026-13", amount: 1}\n', "steps[0].disburse.period", "YYYY-MM"),
        ("  - stop: bank bca\n", "steps[0].stop", '"bank CODE"'),
        ("  - drop_next: {terminal: BNI00001, direction: up}\n", "steps[0].drop_next.direction", "to_switch, to_terminal"),
        ('  - wait: {until: {saf: "none"}, within: 5s}\n', "steps[0].wait.until.saf", '"0 within 5s"'),
        ("  - cart: {terminal: BNI00001, card: siti, items: {ROKOK: 1}}\n", "steps[0].cart.items.ROKOK", "demo catalogue"),
    ],
)
def test_values_with_a_shape(tmp_path: Path, step: str, path: str, fragment: str) -> None:
    error = only_error(tmp_path, HEAD + step)
    assert error.path == path
    assert fragment in error.message


def test_a_step_has_exactly_one_action(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, HEAD + '  - advance: 1h\n    cut: {terminal: BNI00001}\n  - name: nothing\n')
    assert [(e.line, e.path) for e in errors] == [(FIRST_STEP_LINE, "steps[0]"), (FIRST_STEP_LINE + 2, "steps[1]")]
    assert "found cut, advance" in errors[0].message
    assert "found none" in errors[1].message


def test_undefined_card(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - cek: {card: budi, terminal: BNI00001}\n")
    assert (error.line, error.column, error.path) == (FIRST_STEP_LINE, 11, "steps[0].cek.card")
    assert error.message == 'card "budi" is not defined (cards defined so far: siti)'


def test_card_used_before_the_step_that_defines_it(tmp_path: Path) -> None:
    text = HEAD + "  - cek: {card: siti_baru, terminal: BNI00001}\n  - replace: {card: siti, as: siti_baru}\n"
    error = only_error(tmp_path, text)
    assert error.path == "steps[0].cek.card"
    assert error.message.startswith('card "siti_baru" is defined later (at steps[1])')


def test_a_replacement_card_can_be_used_after_its_step(tmp_path: Path) -> None:
    text = HEAD + "  - replace: {card: siti, as: siti_baru}\n    expect: {balance: {siti_baru: 0}}\n"
    text += "  - cek: {card: siti_baru, terminal: BNI00001}\n"
    assert errors_of(tmp_path, text) == []


def test_undefined_terminal_and_bank(tmp_path: Path) -> None:
    text = HEAD + "  - cek: {card: siti, terminal: BNI00002}\n  - kill: bank bri\n"
    errors = errors_of(tmp_path, text)
    assert [(e.path, e.message) for e in errors] == [
        ("steps[0].cek.terminal", "terminal BNI00002 is not in network.terminals"),
        ("steps[1].kill", "bank bri is not in network.banks"),
    ]


def test_a_terminal_of_a_bank_that_does_not_run(tmp_path: Path) -> None:
    text = HEAD.replace("    - tid: BNI00001\n", "    - tid: BNI00001\n    - tid: BRI00049\n    - tid: BRI00002\n")
    errors = errors_of(tmp_path, text + VALID_STEP)
    assert [(e.line, e.path) for e in errors] == [(10, "network.terminals[1].tid"), (11, "network.terminals[2].tid")]
    assert "not a demo terminal" in errors[0].message
    assert "belongs to bank bri, which is not in network.banks" in errors[1].message


def test_checks_that_make_no_sense_for_the_step(tmp_path: Path) -> None:
    text = HEAD + "  - advance: 2h\n    expect: {rc: \"00\"}\n  - name: later\n    cek: {card: siti, terminal: BNI00001}\n"
    text = text.replace("  - advance: 2h\n", "  - advance: 2h\n") + ""
    errors = errors_of(tmp_path, text)
    assert [(e.path, e.message) for e in errors] == [
        ("steps[0].expect.rc", "\"rc\" checks a terminal transaction and a \"advance\" step makes none"),
    ]


def test_a_journal_check_names_this_or_an_earlier_step(tmp_path: Path) -> None:
    text = HEAD + '  - cek: {card: siti, terminal: BNI00001}\n    expect: {journal: {step: later, rc: "00"}}\n'
    text += "  - name: later\n    cek: {card: siti, terminal: BNI00001}\n"
    text += '  - wait: {until: {journal: {reversed: false}}, within: 5s}\n'
    errors = errors_of(tmp_path, text)
    assert [e.path for e in errors] == ["steps[0].expect.journal.step", "steps[2].wait.until.journal"]
    assert "comes later" in errors[0].message
    assert "name the step" in errors[1].message


def test_a_journal_check_names_a_step_that_made_a_transaction(tmp_path: Path) -> None:
    """Only cek, bayar, cart, tarik_tunai, reversal and offline_sale make one transaction of their
    own: a journal or reconciliation line check of any other step is refused with the reason."""
    text = HEAD + "  - name: uang masuk\n    disburse: {period: \"2026-11\", amount: 150000}\n"
    text += "  - name: tutup\n    settle: {terminal: BNI00001}\n    expect: {journal: {rc: \"00\"}}\n"
    text += '  - cek: {card: siti, terminal: BNI00001}\n    expect: {journal: {step: uang masuk, rc: "00"}}\n'
    text += "  - advance: 1h\n    expect:\n      reconciliation: [{tid: BNI00001, step: tutup, values: {bank_side: found}}]\n"
    errors = errors_of(tmp_path, text)
    assert [e.path for e in errors] == [
        "steps[1].expect.journal",
        "steps[2].expect.journal.step",
        "steps[3].expect.reconciliation[0].step",
    ]
    assert "name the step whose transaction is checked" in errors[0].message
    assert errors[1].message.startswith('step "uang masuk" is a "disburse" step, which makes no transaction to check')
    assert '"settle" step' in errors[2].message


def test_service_actions_with_a_delay_pause_and_resume(tmp_path: Path) -> None:
    valid = HEAD + "  - pause: bank bni\n  - kill: switch after 1s\n  - cek: {card: siti, terminal: BNI00001}\n  - resume: bank bni\n"
    assert errors_of(tmp_path, valid) == []
    text = HEAD + "  - pause: terminal BNI00001\n  - restart: terminal BNI00001 after 2s\n  - stop: bank bni after 500ms\n"
    errors = errors_of(tmp_path, text)
    assert [(e.path, e.message) for e in errors] == [
        ("steps[0].pause", "pause is for a bank or the switch; a terminal is stopped and restarted"),
        ("steps[1].restart", "a terminal is stopped, killed or restarted between steps: leave the delay out"),
        ("steps[2].stop", "a delayed service action lands during the next step: add the step it should land in"),
    ]
    error = only_error(tmp_path, HEAD + "  - kill: switch after 2m\n  - cek: {card: siti, terminal: BNI00001}\n")
    assert (error.path, error.message) == ("steps[0].kill", 'expecting a delay within (0s, 1m], got "2m"')


def test_stock_and_sent_checks(tmp_path: Path) -> None:
    text = HEAD + "  - cart: {terminal: BNI00001, card: siti, items: {BRS-MED: 2}}\n"
    text += "    expect: {sent: false, stock: {BNI00001: {BRS-MED: 800}, BNI00002: {TAHU: 1}}}\n"
    text += "  - advance: 1h\n    expect: {sent: true}\n"
    errors = errors_of(tmp_path, text)
    assert [(e.path, e.message) for e in errors] == [
        ("steps[0].expect.stock.BNI00002", "terminal BNI00002 is not in network.terminals"),
        ("steps[1].expect.sent", '"sent" checks a terminal transaction and a "advance" step makes none'),
    ]


def test_all_errors_of_a_file_in_line_order(tmp_path: Path) -> None:
    text = HEAD + "  - bayar: {card: siti, terminal: BNI00001, amount: 1.5}\n  - cek: {card: siti, terminal: BNI00001, pin: 1}\n"
    errors = errors_of(tmp_path, text)
    assert [e.line for e in errors] == [FIRST_STEP_LINE, FIRST_STEP_LINE + 1]


def test_load_scenario_raises_the_first_error_with_all_of_them(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  - cek: {card: a, terminal: BNI00001}\n  - cek: {card: b, terminal: BNI00001}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == "steps[0].cek.card"
    assert [e.path for e in caught.value.errors] == ["steps[0].cek.card", "steps[1].cek.card"]


def test_parse_scenario_from_text() -> None:
    scenario = parse_scenario(HEAD + VALID_STEP, "inline.yaml")
    assert scenario.steps[0].action == "cek"
    with pytest.raises(ScenarioError, match=r"^inline\.yaml:16:5: steps\[1\]: a step has exactly one action"):
        parse_scenario(HEAD + VALID_STEP + "  - {}\n", "inline.yaml")


# -- bounds and odd inputs ------------------------------------------------------------------------------


def test_anchors_and_aliases_are_refused(tmp_path: Path) -> None:
    text = HEAD + "  - cek: &c {card: siti, terminal: BNI00001}\n  - cek: *c\n"
    error = only_error(tmp_path, text)
    assert (error.line, error.column) == (FIRST_STEP_LINE, 10)
    assert "anchors and aliases" in error.message


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - cek: {<<: {card: siti}, terminal: BNI00001}\n")
    assert "merge keys" in error.message


def test_too_large_a_file(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + VALID_STEP + "#" * FILE_BYTES_MAX + "\n")
    assert error.line is None
    assert error.message.startswith("too large")
    assert str(error) == f"{tmp_path / 'scenario.yaml'}: {error.message}"


def test_too_many_steps(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + '  - advance: 1s\n' * (STEPS_MAX + 1))
    assert (error.line, error.path) == (14, "steps")
    assert error.message == f"at most {STEPS_MAX} entries, got {STEPS_MAX + 1}"


def test_nesting_is_bounded(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - x: " + "[" * 200 + "]" * 200 + "\n")
    assert error.message == f"nested too deeply: at most {DEPTH_MAX} levels"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "the file is empty"), ("- a\n- b\n", "a scenario is a mapping"), ("a: 1\n---\nb: 2\n", "not valid YAML")],
)
def test_not_a_scenario_at_all(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in only_error(tmp_path, text).message


def test_not_utf8_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    assert only_error(tmp_path, "", "empty.yaml").message.startswith("the file is empty")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    error = only_error(tmp_path, HEAD + "  - advance: !!python/name:os.system ''\n")
    assert error.line == FIRST_STEP_LINE
    assert "cannot read this value" in error.message
