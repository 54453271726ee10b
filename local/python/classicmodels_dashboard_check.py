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
import os
import sys
from decimal import Decimal, InvalidOperation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classicmodels_dashboard import REVENUE_LINES, read_warehouse  # noqa: E402
from dashboard import schema_of  # noqa: E402
from dashboard_check import pipeline_check_main  # noqa: E402
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


def revenue_kpi(warehouse: str, dom, failures: list) -> str:
    """The revenue KPI equals the fact's revenue to the cent."""
    revenue = fact_revenue(warehouse)
    shown = dom.kpis.get("kpi-revenue")
    if shown is None:
        failures.append("the page shows no revenue KPI (kpi-revenue)")
        return ""
    if shown_amount(shown) != revenue:
        failures.append(f"revenue KPI shows {shown!r}, the fact's revenue (orders not cancelled) is {revenue}")
    return f"revenue {shown.strip()}, "


def main() -> None:
    pipeline_check_main(__doc__.splitlines()[0], "classicmodels", CHARTS, read_warehouse, "revenue", revenue_kpi)


if __name__ == "__main__":
    main()
