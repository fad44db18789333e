"""Reports of a scenario run: JUnit XML (one testcase per scenario) and a self-contained HTML page
(no external assets) with each step's verdicts, balances and ISO messages as the EDC message
inspector shows them (card numbers masked)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from .runner import PASS, ScenarioResult, describe_exchanges


def junit_xml(results: Sequence[ScenarioResult]) -> str:
    """One <testcase> per scenario; a failed one carries a <failure> naming step and expectation."""
    failures = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite",
        name="sembako-scenarios",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.elapsed_s for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(suite, "testcase", classname="scenario", name=result.name, file=result.file, time=f"{result.elapsed_s:.3f}")
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.failure() or "failed")
            failure.text = "\n".join(f"{s.label}: {s.status}" + (f" - {s.failure()}" if s.failure() else "") for s in result.steps)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(f"{s.label} {s.status} {s.elapsed_s:.2f}s" for s in result.steps)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
.PASS{color:#06702a;font-weight:bold}.FAIL,.ERROR{color:#b00020;font-weight:bold}.SKIP{color:#777}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.8em}details{margin:.3em 0}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def html_report(results: Sequence[ScenarioResult]) -> str:
    """The whole run as one HTML page, with no external assets."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Sembako scenario run</title>",
        f"<style>{_STYLE}</style></head><body><h1>Sembako scenario run</h1><table><tr><th>scenario</th><th>seed</th><th>result</th><th>time</th></tr>",
    ]
    for r in results:
        status = PASS if r.passed else "FAIL"
        parts.append(f"<tr><td><a href='#{_e(r.name)}'>{_e(r.name)}</a></td><td>{r.seed}</td><td class='{status}'>{status}</td><td>{r.elapsed_s:.1f}s</td></tr>")
    parts.append("</table>")
    for r in results:
        parts.append(_scenario_html(r))
    parts.append("</body></html>\n")
    return "".join(parts)


def _scenario_html(result: ScenarioResult) -> str:
    status = PASS if result.passed else "FAIL"
    parts = [f"<h2 id='{_e(result.name)}'>{_e(result.name)} <span class='{status}'>{status}</span></h2>", f"<p>{_e(result.file)}, seed {result.seed}</p>"]
    if result.failure():
        parts.append(f"<p class='FAIL'>{_e(result.failure())}</p>")
    parts.append("<table><tr><th>#</th><th>step</th><th>verdict</th><th>time</th><th>details</th></tr>")
    for step in result.steps:
        parts.append(f"<tr><td>{step.index + 1}</td><td>{_e(step.name)}<br><small>{_e(step.action)}</small></td>")
        parts.append(f"<td class='{step.status}'>{step.status}</td><td>{step.elapsed_s:.2f}s</td><td>")
        if step.error:
            parts.append(f"<p class='ERROR'>{_e(step.error)}</p>")
        if step.txn is not None:
            parts.append(f"<p>{_e(step.tid)}: RC {_e(step.txn.rc)}, {'approved' if step.txn.approved else 'not approved'}; screen: {_e(step.txn.screen)}</p>")
            if step.txn.slip:
                parts.append(f"<details><summary>slip</summary><pre>{_e(step.txn.slip)}</pre></details>")
        if step.verdicts:
            parts.append("<table>" + "".join(
                f"<tr><td class='{PASS if v.ok else 'FAIL'}'>{'ok' if v.ok else 'FAILED'}</td><td>{_e(v.check)}</td><td>{_e(v.detail)}</td></tr>"
                for v in step.verdicts
            ) + "</table>")
        if step.balances:
            parts.append("<p>balances: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in step.balances.items()) + "</p>")
        for text in describe_exchanges(step.exchanges):
            head = text.splitlines()[0]
            parts.append(f"<details><summary>ISO {_e(head)}</summary><pre>{_e(text)}</pre></details>")
        parts.append("</td></tr>")
    parts.append("</table>")
    return "".join(parts)
