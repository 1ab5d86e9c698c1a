"""`python -m evalkit.report`: paper-style tables and plots from results folders, next to published numbers.

    python -m evalkit.report results/ --compare intfloat/e5-mistral-7b-instruct --out report/

Each problem with the input is one line on stderr. Exit status: 0 written; 1 nothing at all could be
rendered; 3 written, but a result file contradicts its run record (that score is flagged in every table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalkit import EvalkitError
from evalkit.errors import print_error
from evalkit.report.compare import load_references, warn_missing_published
from evalkit.report.published import available_models, mteb_english_tasks
from evalkit.report.runs import find_runs, name_runs, warn
from evalkit.tasks import specs_by_mteb_name


def level(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a significance level is between 0 and 1, got {text}")
    return value


def parse_args(argv: list[str] | None, prog: str = "evalkit report") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
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
    parser.add_argument("--reference-run", metavar="NAME", help="the run the tables mark significant differences "
                        "against (default: the first run with the model config's own settings)")
    parser.add_argument("--alpha", type=level, default=0.05, help="significance level (default: 0.05)")
    parser.add_argument("--adjust", choices=("holm", "bh"), default="holm",
                        help="multiple-comparison adjustment across tasks: holm (default) or bh (Benjamini-Hochberg)")
    return parser.parse_args(argv)


def render(argv: list[str] | None = None, prog: str = "evalkit report") -> int:
    args = parse_args(argv, prog)
    runs = [run for folder in args.results
            for run in find_runs(folder, specs_by_mteb_name(), args.seed, args.resamples)]
    if not runs:
        warn("nothing to report: no task score could be read from the results folder(s)")
        return 1
    name_runs(runs)
    references = load_references(args.compare, runs)
    warn_missing_published(runs, references)

    from evalkit.report import plots, significance, tables  # pandas and matplotlib: only once there is something to draw

    pairs, marks = [], None
    if len(runs) > 1:
        try:
            reference = significance.reference_run(runs, args.reference_run)
        except ValueError as exc:
            warn(str(exc))
            return 2
        options = {"seed": args.seed, "resamples": args.resamples}
        pairs = significance.all_pairs(runs, reference, adjustment=args.adjust, **options)
        marks = significance.table_marks(reference, pairs, runs, args.alpha, args.adjust, set(mteb_english_tasks()))
        written = significance.write(pairs, significance.rank_table(runs, **options), args.out, alpha=args.alpha,
                                     adjustment=args.adjust, **options)
    else:
        written = []
    written += tables.write_tables(runs, references, args.out, seed=args.seed, resamples=args.resamples, marks=marks)
    if not args.no_plots:
        written += plots.write_plots(runs, references, args.out / "plots")
        written += plots.write_forest(pairs, args.alpha, args.out / "plots")
    print(f"evalkit.report: wrote {len(written)} files to {args.out}/")
    flagged = [f"{s.task} ({run.label})" for run in runs for s in run.scores.values() if s.mismatch]
    if flagged:
        warn(f"{len(flagged)} result file(s) contradict their run records, flagged in every table: "
             f"{', '.join(flagged)}")
        return 3
    return 0


def main(argv: list[str] | None = None, prog: str = "evalkit report") -> int:
    """`render`, with an error as one line on stderr (its traceback and causes too under EVALKIT_DEBUG=1), exit 2."""
    try:
        return render(argv, prog)
    except EvalkitError as exc:
        print_error("evalkit.report", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main(prog="python -m evalkit.report"))
