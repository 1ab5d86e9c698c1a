"""One line of the gate's verdict table, and the table itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

HEADER = ("task", "metric", "baseline", "now", "Δ", "paired 95% CI", "p (adj.)", "tolerance", "verdict")


@dataclass
class Row:
    task: str  # a task name, or golden/<model>
    metric: str
    baseline: str
    now: str
    delta: str
    tolerance: str
    ok: Optional[bool]  # None: not run (skipped)
    note: str = ""  # why it failed (each rule that fired, named), or what the worst case was
    ci: str = ""  # score rows: the paired 95% CI of Δ (points) over the baseline's and today's per-item scores
    p: str = ""  # its two-sided p and, in brackets, adjusted across the suite's rows
    rules: list[str] = field(default_factory=list)  # the rules that failed the row: tolerance, significance
    unavailable: str = ""  # why the significance rule could not be applied to this row

    @property
    def verdict(self) -> str:
        return "skipped" if self.ok is None else ("ok" if self.ok else "FAIL")

    def cells(self) -> tuple[str, ...]:
        return (self.task, self.metric, self.baseline, self.now, self.delta, self.ci, self.p, self.tolerance,
                self.verdict)


def table(rows: list[Row]) -> str:
    """Aligned columns, then one note line per failing row, then why the significance rule was unavailable."""
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    right = {2, 3, 4, 5, 6}  # numbers
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.task} {r.metric}: {r.note}" for r in rows if r.ok is False and r.note]
    reasons: dict[str, list[str]] = {}
    for r in rows:
        if r.unavailable:
            reasons.setdefault(r.unavailable, []).append(f"{r.task} {r.metric}")
    unavailable = [f"  {', '.join(where)}: {why}" for why, where in reasons.items()]
    return "\n".join(lines + (["", "why:"] + notes if notes else [])
                     + (["", "significance rule unavailable:"] + unavailable if unavailable else []))
