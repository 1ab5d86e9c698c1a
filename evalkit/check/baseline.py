"""Baseline files `conf/check/baselines/<suite>.json`: read, write (small, diff-friendly JSON), and say what changed.

    {"format": 1, "suite": ..., "recorded": {date, git_sha, versions, hardware},
     "golden": {<model>: {model, revision, dim, fingerprint, probes: {<id>: {text_sha256, token_ids, vector}}}},
     "scores": {<task>: {model, revision, split, metrics: {<metric>: fraction as mteb writes it},
                         items: {<metric>: per-item scores (evalkit.units.Units.to_json), for the significance rule}}}}
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from evalkit import EvalkitError
from evalkit.files import atomic_write

FORMAT = 1


def load(path: Path) -> dict[str, Any] | None:
    """The baseline, or None when the file does not exist yet."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalkitError(f"{path}: not a valid baseline file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EvalkitError(f"{path}: not a baseline file of format {FORMAT} (rewrite it with --update-baseline)")
    data.setdefault("golden", {})
    data.setdefault("scores", {})
    return data


def dumps(data: Mapping[str, Any]) -> str:
    """Indented JSON with every list of numbers (token ids) or plain strings (query ids) on one line, so diffs stay
    readable and files small."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s*((?:-?[\d.eE+-]+,\s*)*-?[\d.eE+-]+)\s*\]",
                  lambda m: "[" + ",".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    return re.sub(r'\[\s*((?:"[^"\\\n]*",\s*)*"[^"\\\n]*")\s*\]',  # lists of plain strings (query ids)
                  lambda m: "[" + ",".join(re.findall(r'"[^"\\\n]*"', m.group(1))) + "]", text) + "\n"


def write(path: Path, suite: str, old: Mapping[str, Any] | None, golden: Mapping[str, Any] | None,
          scores: Mapping[str, Any] | None, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """Write the new baseline; sections not measured this time (None) are kept from the old one."""
    old = old or {}
    data = {
        "format": FORMAT,
        "suite": suite,
        "recorded": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **recorded},
        "golden": dict(golden if golden is not None else old.get("golden", {})),
        "scores": dict(scores if scores is not None else old.get("scores", {})),
    }
    atomic_write(path, dumps(data))
    return data


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What an update changed, one line each; empty when nothing did."""
    old = old or {"golden": {}, "scores": {}}
    lines: list[str] = []
    for task in sorted(set(old["scores"]) | set(new["scores"])):
        before, after = old["scores"].get(task), new["scores"].get(task)
        if before is None or after is None:
            lines.append(f"scores {task}: {'added' if before is None else 'removed'}")
            continue
        if sorted(before.get("items") or {}) != sorted(after.get("items") or {}):
            lines.append(f"scores {task}: per-item scores of {', '.join(sorted(after.get('items') or {})) or 'no metric'}"
                         f" (were: {', '.join(sorted(before.get('items') or {})) or 'none'})")
        bm, am = before.get("metrics", {}), after.get("metrics", {})
        for metric in sorted(set(bm) | set(am)):
            if bm.get(metric) != am.get(metric):
                lines.append(f"scores {task} {metric}: {_points(bm.get(metric))} -> {_points(am.get(metric))}")
    for model in sorted(set(old["golden"]) | set(new["golden"])):
        before, after = old["golden"].get(model), new["golden"].get(model)
        if before is None or after is None:
            lines.append(f"golden {model}: {'added' if before is None else 'removed'}")
            continue
        setup = [f"{k} {before.get('setup', {}).get(k)} -> {v}" for k, v in after.get("setup", {}).items()
                 if before.get("setup", {}).get(k) != v]
        if setup:
            lines.append(f"golden {model} setup: {'; '.join(setup)}")
        parts = [p for p in ("text_sha256", "token_ids", "vector") if before["fingerprint"].get(p) != after["fingerprint"].get(p)]
        if parts:
            differ = [pid for pid in after["probes"] if before["probes"].get(pid) != after["probes"][pid]]
            gone = [pid for pid in before["probes"] if pid not in after["probes"]]
            lines.append(f"golden {model}: {', '.join(parts)} changed ({len(differ)} probes differ"
                         + (f", {len(gone)} removed" if gone else "") + ")")
    return lines


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}"


def environment_note(base: Mapping[str, Any] | None) -> str:
    """Which library versions differ between the baseline's recording and now: the usual suspects."""
    if not base:
        return ""
    from evalkit.results import environment

    was = (base.get("recorded") or {}).get("versions") or {}
    now = environment()["versions"]
    diffs = [f"{pkg} {was[pkg]} -> {now.get(pkg)}" for pkg in sorted(was) if pkg != "evalkit" and was[pkg] != now.get(pkg)]
    return ("versions changed since the baseline: " + ", ".join(diffs)) if diffs else ""
