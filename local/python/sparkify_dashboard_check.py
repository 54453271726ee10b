"""Opens the Sparkify dashboard (sparkify_dashboard.py) in headless Chromium and checks that it shows its charts.

Usage: sparkify_dashboard_check.py <dashboard.html> --warehouse <warehouse.duckdb> [--summary <run-summary.json>]
                                   [--screenshot out.png]

The page is rendered as dashboard_check.py does (same Chromium flags and DOM reader). Asserts: nothing outside
the page is referenced; all three charts drew, each with as many bars as the warehouse gives (hours with plays,
levels, top locations); the row-count table is there when the summary (if given) has `row_counts`.
Exits non-zero with the reasons on failure.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard_check import load_page  # noqa: E402
from sparkify_dashboard import read_warehouse, row_counts  # noqa: E402

CHARTS = {"chart-hours": "hours", "chart-levels": "levels", "chart-locations": "locations"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--summary", default=None)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args()
    dom, failures = load_page(args.page, args.screenshot)
    wh = read_warehouse(args.warehouse)
    want = {chart: len(wh[key]) for chart, key in CHARTS.items()}
    for chart, n in want.items():
        got = int(dom.attrs_by_id.get(chart, {}).get("data-marks", "0"))
        if n == 0:
            failures.append(f"{chart}: no plays in the warehouse, nothing to chart")
        if got != n or dom.rects_in.get(chart, 0) != n:
            failures.append(f"{chart}: drew {dom.rects_in.get(chart, 0)} bars (data-marks {got}), want {n}")
    if dom.body.get("data-rendered") != str(len(CHARTS)):
        failures.append(f"body data-rendered={dom.body.get('data-rendered')!r}, want '{len(CHARTS)}'")
    if args.summary:
        with open(args.summary, encoding="utf-8") as f:
            has_counts = row_counts(json.load(f)) is not None
        if has_counts and dom.tables < 1:
            failures.append("the summary has row_counts but the page shows no row-count table")
    if failures:
        print("sparkify dashboard check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("sparkify dashboard ok: " + ", ".join(f"{c} {n} bars" for c, n in want.items())
          + f", {dom.tables} tables" + (f", screenshot {args.screenshot}" if args.screenshot else ""))


if __name__ == "__main__":
    main()
