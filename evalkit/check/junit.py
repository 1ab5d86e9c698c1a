"""A JUnit XML report of the gate: one test case per table row, so CI systems list each check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from evalkit.check.rows import Row, table


def write(path: Path, suite: str, rows: list[Row], seconds: float, extra: str = "") -> None:
    nothing = all(r.ok is None for r in rows)  # a gate that checked nothing (all skipped) has failed, in JUnit too
    failures = sum(1 for r in rows if r.ok is False) + nothing
    skipped = sum(1 for r in rows if r.ok is None)
    tests = str(len(rows) + nothing)
    root = ET.Element("testsuites", name="evalkit.check", tests=tests, failures=str(failures), time=f"{seconds:.1f}")
    ts = ET.SubElement(root, "testsuite", name=f"evalkit.check.{suite}", tests=tests,
                       failures=str(failures), errors="0", skipped=str(skipped), time=f"{seconds:.1f}")
    if nothing:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.gate", name="checks held")
        ET.SubElement(case, "failure", message="no check held: the gate checked nothing").text = "0 checks held"
    for row in rows:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.{row.task}", name=row.metric)
        summary = f"baseline {row.baseline}, now {row.now}, Δ {row.delta}, tolerance {row.tolerance}" + (
            f", paired 95% CI {row.ci}, p (adjusted) {row.p}" if row.ci else "") + (
            f"; significance rule unavailable: {row.unavailable}" if row.unavailable else "")
        if row.ok is False:
            ET.SubElement(case, "failure", message=f"{row.task} {row.metric}: {row.note or summary}",
                          type="+".join(row.rules) or "check").text = summary
        elif row.ok is None:
            ET.SubElement(case, "skipped", message=row.note or "not run")
        else:
            ET.SubElement(case, "system-out").text = summary
    ET.SubElement(ts, "system-out").text = table(rows) + ("\n" + extra if extra else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
