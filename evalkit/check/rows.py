"""One line of the gate's verdict table, and the table itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

HEADER = ("task", "metric", "baseline", "now", "Δ", "tolerance", "verdict")


@dataclass
class Row:
    task: str  # a task name, or golden/<model>
    metric: str
    baseline: str
    now: str
    delta: str
    tolerance: str
    ok: Optional[bool]  # None: not run (skipped)
    note: str = ""  # why it failed, or what the worst case was

    @property
    def verdict(self) -> str:
        return "skipped" if self.ok is None else ("ok" if self.ok else "FAIL")

    def cells(self) -> tuple[str, ...]:
        return (self.task, self.metric, self.baseline, self.now, self.delta, self.tolerance, self.verdict)


def table(rows: list[Row]) -> str:
    """Aligned columns, then one note line per failing row."""
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    right = {2, 3, 4}  # numbers
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.task} {r.metric}: {r.note}" for r in rows if r.ok is False and r.note]
    return "\n".join(lines + (["", "why:"] + notes if notes else []))
