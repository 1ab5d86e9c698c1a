"""The report: evalkit's results next to the published numbers, as tables and plots (a separate command).

    python -m evalkit.report RESULTS_DIR [...] [--compare MODEL[:KIND]] [--out report/]

The dependency chain runs one way:
    metrics    score scale (0-1 vs points) and metric names, in one place
    published  the published numbers shipped in `reference/`
    runs       results folders read back: TaskScore, Run, finding and naming runs, CIs over queries
    compare    each run against its reference: Comparison, Δ
    significance  runs against each other: paired Δ, CI, p per task, means over tasks, rank intervals
    tables     per-task and Table-1 tables (Markdown, LaTeX, CSV)      (pandas)
    plots      bars, scatter, Δ and forest plots (PNG, SVG)            (matplotlib)
    __main__   the command
Importing the package loads none of torch, transformers or mteb.
"""
