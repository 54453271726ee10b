"""Writes the self-contained HTML dashboard of a classicmodels run: revenue, orders, order lines and customers,
revenue per month, per product line and per customer country (top 15) from the BI views over the order-line star
schema, and the run summary's row counts.

Usage: classicmodels_dashboard.py --warehouse <warehouse.duckdb> --summary <run-summary.json> --out <dashboard.html>

Built like sparkify_dashboard.py (dashboard.py's page shell, styles, table and chart helpers): self-contained,
nothing loaded from anywhere; each chart container gets `data-marks` (bars drawn) and the body `data-rendered`
(charts drawn), which classicmodels_dashboard_check.py reads in headless Chromium. Revenue is what the BI views
count: the exact sum of fact_orders.line_amount (DECIMAL) over the lines of orders not cancelled; the KPIs count
the same lines. Money is shown with 2 decimals (the revenue KPI formatted from the exact decimal). The summary's
`row_counts` ({table: rows}) may be absent: the page says so.
"""
import html
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard import (  # noqa: E402
    CHART_JS_PRELUDE, chart_panel, dashboard_main, html_page, kpis_html, month_slots, query_rows,
    row_counts_panel, run_period, schema_of,
)
from duckdb_env import connect  # noqa: E402

TOP_COUNTRIES = 15
# The BI views' rule for a line that counts as revenue (fact_orders.status, the order's status).
REVENUE_LINES = "status <> 'Cancelled'"



def read_warehouse(path: str, top_countries: int = TOP_COUNTRIES) -> dict:
    con = connect(path, read_only=True)
    try:
        serving = schema_of(con, "fact_orders")
        lines_view = f"{schema_of(con, 'sales_by_product_line_monthly')}.sales_by_product_line_monthly"
        countries_view = f"{schema_of(con, 'sales_by_country_monthly')}.sales_by_country_monthly"
        months = query_rows(
            con,
            "SELECT strftime(month_start, '%Y-%m') AS month, sum(revenue) AS revenue "
            f"FROM {lines_view} GROUP BY 1 ORDER BY 1",
        )
        product_lines = query_rows(
            con,
            f"SELECT product_line, sum(revenue) AS revenue FROM {lines_view} "
            "GROUP BY product_line ORDER BY revenue DESC, product_line",
        )
        countries = query_rows(
            con,
            f"SELECT country, sum(revenue) AS revenue FROM {countries_view} "
            f"GROUP BY country ORDER BY revenue DESC, country LIMIT {int(top_countries)}",
        )
        # The exact (DECIMAL) total, not through query_rows' floats: the KPI shows it to the cent.
        revenue = con.execute(f"SELECT sum(revenue) FROM {lines_view}").fetchone()[0]
        totals = query_rows(
            con,
            "SELECT count(DISTINCT order_number) AS orders, count(*) AS order_lines, "
            f"count(DISTINCT customer_number) AS customers FROM {serving}.fact_orders WHERE {REVENUE_LINES}",
        )[0]
    finally:
        con.close()
    return {"serving": serving, "lines_view": lines_view, "countries_view": countries_view,
            "months": months, "slots": month_slots(months), "product_lines": product_lines,
            "countries": countries, "revenue": Decimal(revenue or 0), "totals": totals,
            "top_countries": top_countries}


def format_money(amount: Decimal) -> str:
    """$1,234.56: two decimals, from the exact amount."""
    return f"${amount:,.2f}"


SCRIPT = CHART_JS_PRELUDE + r"""
  // Amounts with cents; axis ticks (round steps) in whole dollars (the prelude's money).
  const cents = v => v.toLocaleString('en-US', {style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2});

  // Vertical bars over fixed slots (the months from the first to the last; a month without revenue draws no bar).
  function columns(box, slots, rows, key, what) {
    if (!rows.length) return empty(box, 'No revenue.');
    const byKey = Object.fromEntries(rows.map(r => [String(r[key]), r.revenue]));
    const W = 640, H = 300, left = 78, bottom = 52, topPad = 18;
    const slot = (W - left - 10) / slots.length, barW = Math.max(3, slot * 0.7);
    // Four gridlines at a whole, round step (1, 2, 3 .. times a power of ten).
    const raw = Math.max(...rows.map(r => r.revenue)) / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    const step = Math.max(1, Math.ceil(raw / mag) * mag), max = step * 4;
    const scale = v => (H - bottom - topPad) * Math.max(v, 0) / max;
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    for (let k = 0; k <= 4; k++) {
      const v = step * k, y = H - bottom - scale(v);
      el('line', {class: 'axis', x1: left, x2: W - 10, y1: y, y2: y}, svg);
      el('text', {x: left - 6, y: y + 4, 'text-anchor': 'end'}, svg, money(v));
    }
    let marks = 0;
    slots.forEach((s, i) => {
      const x = left + i * slot + (slot - barW) / 2, cx = x + barW / 2, ly = H - bottom + 12;
      // Slanted labels: a few years of months do not fit side by side.
      el('text', {x: cx, y: ly, 'text-anchor': 'end', transform: `rotate(-45 ${cx} ${ly})`}, svg, String(s));
      const v = byKey[String(s)];
      if (v === undefined) return;
      const bar = el('rect', {class: 'bar', x, y: H - bottom - scale(v), width: barW, height: Math.max(scale(v), 0.5), rx: 2, fill: COLORS[0]}, svg);
      el('title', {}, bar, `${s}: ${cents(v)}`);
      marks++;
    });
    box.dataset.marks = String(marks);
  }

  // Horizontal bars, one per row, labelled.
  function barsH(box, rows, key, what, j) {
    if (!rows.length) return empty(box, 'No revenue.');
    const W = 640, left = 200, right = 110, barH = 18, gap = 6, top = 8;
    const H = top + rows.length * (barH + gap) + 8;
    const max = Math.max(...rows.map(r => r.revenue)) || 1;
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    rows.forEach((r, i) => {
      const y = top + i * (barH + gap);
      const w = Math.max(1, (W - left - right) * Math.max(r.revenue, 0) / max);
      const label = String(r[key]);
      el('text', {x: left - 8, y: y + barH * 0.72, 'text-anchor': 'end'}, svg, label.length > 30 ? label.slice(0, 29) + '…' : label);
      const bar = el('rect', {class: 'bar', x: left, y, width: w, height: barH, rx: 3, fill: COLORS[j % COLORS.length]}, svg);
      el('title', {}, bar, `${label}: ${cents(r.revenue)}`);
      el('text', {x: left + w + 6, y: y + barH * 0.72}, svg, cents(r.revenue));
    });
    el('line', {class: 'axis', x1: left, x2: left, y1: 0, y2: H - 4}, svg);
    box.dataset.marks = String(rows.length);
  }

  const boxes = ['chart-months', 'chart-product-lines', 'chart-countries'].map(id => document.getElementById(id));
  columns(boxes[0], data.slots, data.months, 'month', 'Revenue per month');
  barsH(boxes[1], data.product_lines, 'product_line', 'Revenue by product line', 1);
  barsH(boxes[2], data.countries, 'country', 'Revenue by customer country', 2);
  document.body.dataset.rendered = String(boxes.filter(b => Number(b.dataset.marks) > 0).length);
})();
"""


def render(summary: dict, wh: dict) -> str:
    t = wh["totals"]
    kpis = [
        (format_money(wh["revenue"]), "revenue (orders not cancelled)"),
        (f"{t['orders']:,}", "orders"),
        (f"{t['order_lines']:,}", "order lines"),
        (f"{t['customers']:,}", "customers with orders"),
    ]
    body = "\n".join([
        f'<div class="kpis">{kpis_html(kpis, {0: "revenue", 1: "orders", 2: "order_lines", 3: "customers"})}</div>',
        chart_panel("chart-months", "Revenue per month", f"{wh['lines_view']}.revenue by month of the order date"),
        chart_panel("chart-product-lines", "Revenue by product line", f"{wh['lines_view']}.revenue by product_line"),
        chart_panel("chart-countries", f"Revenue by customer country (top {wh['top_countries']})",
               f"{wh['countries_view']}.revenue by country ('unknown': customer not landed yet)"),
        row_counts_panel(summary),
    ])
    period = run_period(summary)
    intro = (f"Local pipeline run{html.escape(period)}: the classicmodels tables into the Iceberg tables of namespace "
             f"classicmodels, dbt order-line star schema ({html.escape(wh['serving'])}.fact_orders) and BI views. "
             "Revenue, orders, lines and customers leave out cancelled orders, as the BI views do.")
    payload = {"slots": wh["slots"], "months": wh["months"], "product_lines": wh["product_lines"],
               "countries": wh["countries"]}
    return html_page("classicmodels: local pipeline run", "classicmodels sales", intro, body, payload, SCRIPT)


def main() -> None:
    dashboard_main(__doc__.splitlines()[0], render, read_warehouse)


if __name__ == "__main__":
    main()
