"""`python -m evalkit.check suite=<name>`: the embedding-quality gate for CI.

Exit status: 0 every check held and at least one ran (or the baseline was rewritten), 1 a check failed or
nothing was checked, 2 bad input (such as --golden-only on a suite without golden checks).
torch, transformers and mteb load only once a suite runs, so --help and --list are fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evalkit import EvalkitError
from evalkit.errors import print_error

EPILOG = """examples:
  python -m evalkit.check suite=ci --junit results/check/ci.junit.xml
  python -m evalkit.check suite=ci --golden-only           golden embeddings only (seconds)
  python -m evalkit.check suite=ci model.dtype=bfloat16    would this change pass the gate?
  python -m evalkit.check suite=ci --update-baseline       accept the current numbers (says what changed)
  evalkit check --config-dir myconf suite=mine --update-baseline   a suite of your own: myconf/check/mine.yaml,
                                                           its baseline myconf/check/baselines/mine.json
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evalkit check", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Fail when embedding quality moves: golden embeddings of fixed probe texts, "
                                            "then task scores, against check/baselines/<suite>.json beside the suite.")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="suite=<name> (check/<name>.yaml of a config folder, or a path to a suite .yaml), and "
                        "model.<key>=<value> to change every model of the suite")
    p.add_argument("--update-baseline", action="store_true", help="run everything and rewrite the baseline file")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report here")
    where = p.add_mutually_exclusive_group()  # one place for the baseline, never one silently over the other
    where.add_argument("--baseline", type=Path, metavar="FILE",
                       help="baseline file (default: baselines/<suite>.json beside the suite file)")
    where.add_argument("--baseline-dir", type=Path, metavar="DIR", help="read and write the baseline as DIR/<suite>.json")
    p.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                   help="a config folder searched before evalkit's own (repeatable; like EVALKIT_CONFIG_PATH)")
    p.add_argument("--results-dir", type=Path, metavar="DIR", help="where the score runs write (default results/check/<suite>)")
    p.add_argument("--golden-only", action="store_true", help="skip the score checks")
    p.add_argument("--keep-going", action="store_true", help="run the score checks even when golden checks failed")
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    p.add_argument("--alpha", type=float, default=0.05, metavar="LEVEL",
                   help="significance rule: fail a score on a paired drop (per-item scores against the baseline's) "
                        "with adjusted p below LEVEL (default 0.05; 0 turns the rule off)")
    p.add_argument("--adjust", choices=("holm", "bh"), default="holm",
                   help="the significance rule's adjustment across the suite's rows: holm (default) or bh")
    return p


def parse_overrides(items: list[str]) -> tuple[str, dict]:
    """suite=<name> and model.<key>=<value> (YAML values), through evalkit's one key=value parser."""
    import yaml

    from evalkit.config import parse_overrides as key_values

    args = key_values(items, ("suite",), nested=("model",))
    if not args.get("suite"):
        raise EvalkitError("no suite given: pass suite=<name> (--list shows them)")
    model = {key[6:]: yaml.safe_load(value) if value else "" for key, value in args.items() if key != "suite"}
    return args["suite"], model


def report(outcome, baseline_note: str) -> str:
    from evalkit.check.rows import table

    lines = [baseline_note, "", table(outcome.rows), ""]
    took = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
    if outcome.updated:
        lines.append(f"baseline rewritten: {outcome.baseline_path} ({took})")
        lines += [f"  {c}" for c in outcome.changes] or ["  nothing changed"]
    elif outcome.ok:
        skipped = sum(r.ok is None for r in outcome.rows)
        lines.append(f"PASS: {outcome.held} checks held{f', {skipped} skipped' if skipped else ''} ({took})")
    elif not outcome.failed:
        lines.append(f"FAIL: no check held ({len(outcome.rows)} skipped, {took}): the gate checked nothing")
    else:
        lines.append(f"FAIL: {len(outcome.failed)} of {len(outcome.rows)} checks failed ({took}). If the change is "
                     f"intended, rerun with --update-baseline and commit {outcome.baseline_path.name}.")
        if outcome.environment_note:
            lines.append(outcome.environment_note)
    return "\n".join(lines)


def describe_baseline(path: Path) -> str:
    from evalkit.check import baseline

    data = baseline.load(path)
    if data is None:
        return f"baseline {path}: none yet"
    rec = data.get("recorded", {})
    versions = rec.get("versions") or {}
    return (f"baseline {path}: recorded {rec.get('date')} at {rec.get('git_sha')} "
            f"(torch {versions.get('torch')}, transformers {versions.get('transformers')}, mteb {versions.get('mteb')})")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("evalkit").setLevel(logging.INFO)
    try:
        from evalkit.check.suite import load_suite, suite_names
        from evalkit.conf_path import add_config_dirs

        add_config_dirs(args.config_dir)
        if args.list:
            print("\n".join(suite_names()))
            return 0
        if not 0 <= args.alpha < 1:
            raise EvalkitError(f"--alpha must be in [0, 1), got {args.alpha}")
        name, model_overrides = parse_overrides(args.overrides)
        suite = load_suite(name)
        from evalkit.check.gate import baseline_path, check

        path = args.baseline or baseline_path(suite, args.baseline_dir)
        note = describe_baseline(path)
        outcome = check(suite, path, results_dir=args.results_dir, update=args.update_baseline,
                        golden_only=args.golden_only, keep_going=args.keep_going, model_overrides=model_overrides,
                        alpha=args.alpha, adjustment=args.adjust)
    except EvalkitError as exc:
        print_error("evalkit.check", exc)
        return 2
    text = report(outcome, note)
    print(text)
    if args.junit:
        from evalkit.check import junit

        junit.write(args.junit, suite.name, outcome.rows, outcome.seconds.get("total", 0.0), text)
        print(f"JUnit report: {args.junit}")
    return 0 if outcome.updated or outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
