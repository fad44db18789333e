from __future__ import annotations

from shared import rc


def test_every_code_of_the_design_has_both_texts() -> None:
    design = "00 05 12 13 14 30 41 51 53 54 55 57 58 62 75 91 94 95 96".split()
    design.append("63")  # security violation: a key exchange without proof of the master key
    assert sorted(rc.ALL_CODES) == sorted(design)
    for code in design:
        entry = rc.lookup(code)
        assert entry.text_id and entry.text_en


def test_unknown_codes_are_reported_not_raised() -> None:
    assert rc.lookup("99").text_en == "Response code 99"
    assert rc.lookup("00").approved and not rc.lookup("51").approved
