"""Opens the classicmodels dashboard (classicmodels_dashboard.py) in headless Chromium and checks that it shows its
charts and the warehouse's revenue.

Usage: classicmodels_dashboard_check.py <dashboard.html> --warehouse <warehouse.duckdb>
                                        [--summary <run-summary.json>] [--screenshot out.png]

The page is rendered as dashboard_check.py does (same Chromium flags and DOM reader). Asserts: nothing outside
the page is referenced; all three charts drew, each with as many bars as the warehouse gives (months with revenue,
product lines, top countries), none empty; the revenue KPI equals, to the cent, the fact's revenue as the BI views
count it (sum(line_amount) of fact_orders over the orders not cancelled), queried here from the fact itself; the
row-count table is there when the summary (if given) has `row_counts`.
Exits non-zero with the reasons on failure.
"""
import argparse
import json
import os
import sys
from decimal import Decimal, InvalidOperation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classicmodels_dashboard import REVENUE_LINES, read_warehouse, row_counts  # noqa: E402
from dashboard import schema_of  # noqa: E402
from dashboard_check import load_page  # noqa: E402
from duckdb_env import connect  # noqa: E402

CHARTS = {"chart-months": "months", "chart-product-lines": "product_lines", "chart-countries": "countries"}


def fact_revenue(warehouse: str) -> Decimal:
    """The revenue the BI views count, from the fact: the exact sum of line_amount of the orders not cancelled."""
    con = connect(warehouse, read_only=True)
    try:
        s = schema_of(con, "fact_orders")
        total = con.execute(f"SELECT sum(line_amount) FROM {s}.fact_orders WHERE {REVENUE_LINES}").fetchone()[0]
    finally:
        con.close()
    return Decimal(total or 0)


def shown_amount(text: str) -> Decimal | None:
    """'$23,424.77' -> Decimal('23424.77'); None if the text is no amount with cents."""
    raw = text.strip().removeprefix("$").replace(",", "")
    if "." not in raw or len(raw.rsplit(".", 1)[1]) != 2:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


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
            failures.append(f"{chart}: no revenue in the warehouse, nothing to chart")
        if got != n or dom.rects_in.get(chart, 0) != n:
            failures.append(f"{chart}: drew {dom.rects_in.get(chart, 0)} bars (data-marks {got}), want {n}")
    if dom.body.get("data-rendered") != str(len(CHARTS)):
        failures.append(f"body data-rendered={dom.body.get('data-rendered')!r}, want '{len(CHARTS)}'")
    revenue = fact_revenue(args.warehouse)
    shown = dom.kpis.get("kpi-revenue")
    if shown is None:
        failures.append("the page shows no revenue KPI (kpi-revenue)")
    elif shown_amount(shown) != revenue:
        failures.append(f"revenue KPI shows {shown!r}, the fact's revenue (orders not cancelled) is {revenue}")
    if args.summary:
        with open(args.summary, encoding="utf-8") as f:
            has_counts = row_counts(json.load(f)) is not None
        if has_counts and dom.tables < 1:
            failures.append("the summary has row_counts but the page shows no row-count table")
    if failures:
        print("classicmodels dashboard check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"classicmodels dashboard ok: revenue {shown.strip()}, "
          + ", ".join(f"{c} {n} bars" for c, n in want.items())
          + f", {dom.tables} tables" + (f", screenshot {args.screenshot}" if args.screenshot else ""))


if __name__ == "__main__":
    main()
