"""Opens the Sparkify dashboard (sparkify_dashboard.py) in headless Chromium and checks that it shows its charts.

Usage: sparkify_dashboard_check.py <dashboard.html> --warehouse <warehouse.duckdb> [--summary <run-summary.json>]
                                   [--screenshot out.png]

The page is rendered as dashboard_check.py does (same Chromium flags and DOM reader). Asserts: nothing outside
the page is referenced; all three charts drew, each with as many bars as the warehouse gives (hours with plays,
levels, top locations); the row-count table is there when the summary (if given) has `row_counts`.
Exits non-zero with the reasons on failure.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard_check import pipeline_check_main  # noqa: E402
from sparkify_dashboard import read_warehouse  # noqa: E402

CHARTS = {"chart-hours": "hours", "chart-levels": "levels", "chart-locations": "locations"}


def main() -> None:
    pipeline_check_main(__doc__.splitlines()[0], "sparkify", CHARTS, read_warehouse, "plays")


if __name__ == "__main__":
    main()
