"""`python -m evalkit.report`: paper-style tables and plots from results folders, next to published numbers.

    python -m evalkit.report results/ --compare intfloat/e5-mistral-7b-instruct --out report/

Each problem with the input is one line on stderr; the exit code is non-zero only when nothing at all
could be rendered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalkit.report.compare import load_references, warn_missing_published
from evalkit.report.published import available_models
from evalkit.report.runs import find_runs, name_runs, warn
from evalkit.tasks import specs_by_mteb_name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.report",
        description="Paper-style tables (Markdown, LaTeX, CSV) and plots from results folders, "
        "compared with published numbers.",
    )
    parser.add_argument("results", nargs="+", type=Path,
                        help="results folder(s): a results root, an <org__model> folder or a <revision> folder")
    parser.add_argument("--compare", action="append", default=[], metavar="MODEL[:KIND]",
                        help="published numbers to compare with (repeatable); default: those of the models run; "
                        f"known: {', '.join(available_models())}")
    parser.add_argument("--out", "-o", type=Path, default=Path("report"), help="output folder (default: report)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument("--benchmark", metavar="NAME", help="also a leaderboard of an mteb benchmark's tasks, e.g. "
                        "\"MTEB(eng, v2)\" (evalkit.report.leaderboard)")
    parser.add_argument("--published-dir", action="append", default=[], type=Path, metavar="DIR",
                        help="with --benchmark: more published models, from an mteb results folder (repeatable)")
    args = parser.parse_args(argv)
    if args.published_dir and not args.benchmark:
        parser.error("--published-dir needs --benchmark")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [run for folder in args.results
            for run in find_runs(folder, specs_by_mteb_name(), args.seed, args.resamples)]
    if not runs:
        warn("nothing to report: no task score could be read from the results folder(s)")
        return 1
    name_runs(runs)
    references = load_references(args.compare, runs)
    warn_missing_published(runs, references)

    from evalkit.report import plots, tables  # pandas and matplotlib: only once there is something to draw

    written = []
    if args.benchmark:  # first: a bad benchmark name or folder stops the report before it writes anything
        from evalkit import EvalkitError
        from evalkit.report.leaderboard import write_leaderboard

        try:
            written += write_leaderboard(args.benchmark, runs, args.published_dir, args.out, not args.no_plots)
        except EvalkitError as exc:
            warn(str(exc))
            return 2
    written += tables.write_tables(runs, references, args.out, seed=args.seed, resamples=args.resamples)
    if not args.no_plots:
        written += plots.write_plots(runs, references, args.out / "plots")
    print(f"evalkit.report: wrote {len(written)} files to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
