"""Writes the self-contained HTML dashboard of a local run: both BI views as charts, and the run summary
(records per stage, quarantined, rule results, timings, and the inferred dimension members when the summary
has them).

Usage: dashboard.py --warehouse <warehouse.duckdb> --summary <run-summary.json> --out <dashboard.html>

Self-contained: data, styles and the chart code are inline; the page loads nothing from anywhere, so it
opens from disk with no network. Charts are SVG drawn by the inline script; each chart container gets
`data-marks` (how many bars it drew) and the body `data-rendered` (how many charts drew), which the
headless-browser test reads.

Also a library for the pipelines' dashboards (<pipeline>_dashboard.py): query_rows, schema_of, html_table,
kpis_html, chart_panel, row_counts, row_counts_panel, run_period, month_slots, STYLE, CHART_JS_PRELUDE, html_page
and write_page.
"""
import argparse
import datetime as dt
import html
import json
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from duckdb_env import connect  # noqa: E402

SERVING = "deftunes_serving"


def query_rows(con, sql: str) -> list[dict]:
    rel = con.execute(sql)
    cols = [d[0] for d in rel.description]
    # DECIMAL sums (Redshift-style numeric prices) become floats: the charts do arithmetic on them.
    return [{c: float(v) if isinstance(v, Decimal) else v for c, v in zip(cols, r)} for r in rel.fetchall()]


def schema_of(con, relation: str) -> str:
    """The schema of a table or view of the warehouse; exits with a message when there is none."""
    row = con.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = ? LIMIT 1", [relation]
    ).fetchone()
    if not row:
        raise SystemExit(f"dashboard: {relation!r} not found in the warehouse (did dbt build run?)")
    return row[0]


def read_warehouse(path: str) -> dict:
    con = connect(path, read_only=True)
    try:
        artists_schema = schema_of(con, "sales_per_artist_per_year")
        countries_schema = schema_of(con, "sales_per_country_per_month")
        artists = query_rows(
            con,
            f"SELECT session_year, artist_id, artist_name, items_sold, round(total_sales, 2) AS total_sales "
            f"FROM {artists_schema}.sales_per_artist_per_year ORDER BY session_year, total_sales DESC, artist_id",
        )
        countries = query_rows(
            con,
            f"SELECT session_year, session_month, country_code, items_sold, round(total_sales, 2) AS total_sales "
            f"FROM {countries_schema}.sales_per_country_per_month ORDER BY session_year, session_month, country_code",
        )
        fact_rows = con.execute(f"SELECT count(*) FROM {SERVING}.fact_session").fetchone()[0]
    finally:
        con.close()
    return {
        "artists": artists,
        "countries": countries,
        "fact_rows": fact_rows,
        "artists_view": f"{artists_schema}.sales_per_artist_per_year",
        "countries_view": f"{countries_schema}.sales_per_country_per_month",
    }


# The inferred (late-arriving) dimension members the run summary may count, as `bi_preview.py --json` prints
# them: under "serving" (or at the top level). Absent from summaries of older runs: then not shown.
INFERRED_KEYS = (("inferred_users", "users"), ("inferred_songs", "songs"), ("inferred_artists", "artists"))


def inferred_counts(summary: dict) -> dict:
    """{summary key: count} of the inferred members the summary records (empty if it records none)."""
    serving = summary.get("serving")
    sources = [serving if isinstance(serving, dict) else {}, summary]
    out = {}
    for key, _ in INFERRED_KEYS:
        for src in sources:
            if isinstance(src.get(key), int) and not isinstance(src.get(key), bool):
                out[key] = src[key]
                break
    return out


def html_table(headers: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="num"' if i >= numeric_from else ""
            text = f"{v:,}" if isinstance(v, int) else str(v)
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def chart_panel(chart_id: str, title: str, note: str) -> str:
    """A chart's panel: its container `chart_id` (data-marks 0 until the script draws) under a title and note."""
    return f"""<section class="panel">
<h2>{html.escape(title)}</h2>
<p class="note">{html.escape(note)}</p>
<div id="{chart_id}" class="chart" data-marks="0"><p class="empty">The chart needs JavaScript.</p></div>
</section>"""


def row_counts(summary: dict) -> dict | None:
    """The summary's {table: rows}, or None when it has none."""
    counts = summary.get("row_counts")
    return counts if isinstance(counts, dict) else None


def row_counts_panel(summary: dict) -> str:
    """The panel of the summary's row counts (a table), or a note when it has none."""
    counts = row_counts(summary)
    if counts is None:
        counts_html = '<p class="empty">The run summary has no row counts.</p>'
    else:
        counts_html = html_table(["table", "rows"], [[name, rows] for name, rows in sorted(counts.items())])
    return f'<section class="panel"><h2>Row counts (run summary)</h2>{counts_html}</section>'


def run_period(summary: dict) -> str:
    """' over <first start_date> .. <last end_date>' of the summary's windows, or '' when it has none."""
    windows = summary.get("windows") or []
    return (f" over {windows[0].get('start_date')} .. {windows[-1].get('end_date')}"
            if windows and isinstance(windows[0], dict) else "")


def month_slots(months: list[dict]) -> list[str]:
    """Every month 'yyyy-mm' from the first to the last of `months` (rows with a 'month'; a month without any
    draws no bar)."""
    if not months:
        return []
    first, last = months[0]["month"], months[-1]["month"]
    y, m = int(first[:4]), int(first[5:])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def summary_sections(summary: dict, fact_rows: int) -> str:
    inferred = inferred_counts(summary)
    landing = summary.get("landing", {})
    transform = summary.get("transform", {})
    stages = html_table(
        ["source", "landing objects", "landed records", "expected from source"],
        [[s, t["objects"], t["records"], t["expected"]] for s, t in sorted(landing.items())],
    )
    tables = html_table(
        ["table", "objects", "records in", "committed", "unchanged", "quarantined", "rows in table"],
        [
            [name, t["objects"], t["records_in"], t["records_committed"], t.get("records_unchanged", 0),
             t["records_quarantined"], t["table_rows"]]
            for name, t in sorted(transform.items())
        ]
        + [["fact_session (dbt)", "", "", "", "", "", fact_rows]]
        + [[f"dim_{name} inferred members (dbt)", "", "", "", "", "", inferred[key]]
           for key, name in INFERRED_KEYS if key in inferred],
    )
    rules = []
    for name, t in sorted(transform.items()):
        for rule, r in sorted(t.get("dataset_rules", {}).items()):
            verdict = "passed" if r["passed"] else "FAILED"
            rules.append([name, rule, f"{r['worst_value']:.4f}", r["threshold"], verdict])
        for failure in t.get("quality_failures", []):
            rules.append([name, failure, "", "", "FAILED"])
    rules_html = html_table(["table", "rule", "worst value", "threshold", "result"], rules, numeric_from=2)
    timings = summary.get("timings_ms", {})
    timing_rows = [[k, f"{v / 1000:.1f} s"] for k, v in sorted(timings.items(), key=lambda kv: -kv[1])]
    return f"""
<section class="panel"><h2>Landing zone (extract)</h2>{stages}</section>
<section class="panel"><h2>Transform zone (Iceberg) and serving</h2>{tables}</section>
<section class="panel"><h2>Data quality rules</h2>{rules_html}</section>
<section class="panel"><h2>Timings</h2>{html_table(["stage", "time"], timing_rows)}</section>"""


# One stylesheet for every dashboard: these pages and the run reports of the state machine's
# run-control function (shared/src/run_control/html.rs embeds the same file).
STYLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "assets", "dashboard.css")
with open(STYLE_PATH, encoding="utf-8") as _f:
    STYLE = "\n" + _f.read()

# The start of every dashboard's script: the page's data, SVG helpers. A script continues it and closes the
# function with `})();`.
CHART_JS_PRELUDE = r"""
(function () {
  const data = JSON.parse(document.getElementById('dashboard-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#2f6fdf', '#e5793b', '#2fa56f', '#c4436b', '#8a5cd6', '#c9a227', '#3aa6b9', '#6b7384', '#b5651d'];
  const color = (series, j) => series === 'other' ? '#b8bfcc' : COLORS[j % COLORS.length];
  const money = v => v.toLocaleString('en-US', {style: 'currency', currency: 'USD', maximumFractionDigits: 0});
  function el(name, attrs, parent, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function empty(box, why) {
    box.innerHTML = '';
    const p = document.createElement('p'); p.className = 'empty'; p.textContent = why; box.appendChild(p);
    box.dataset.marks = '0';
  }
"""

SCRIPT = CHART_JS_PRELUDE + r"""
  // Top artists of a year: horizontal bars.
  const artistBox = document.getElementById('chart-artists');
  const years = [...new Set(data.artists.map(r => r.session_year))].sort();
  const picker = document.getElementById('artist-year');
  for (const y of years) { const o = document.createElement('option'); o.value = y; o.textContent = y; picker.appendChild(o); }
  function drawArtists(year) {
    const rows = data.artists.filter(r => r.session_year === year).slice(0, data.top_artists);
    if (!rows.length) return empty(artistBox, 'No sales in the BI view.');
    const W = 640, left = 210, right = 70, barH = 18, gap = 6, top = 8;
    const H = top + rows.length * (barH + gap) + 24;
    const max = Math.max(...rows.map(r => r.total_sales));
    artistBox.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': `Top artists by sales in ${year}`}, artistBox);
    rows.forEach((r, i) => {
      const y = top + i * (barH + gap);
      const w = Math.max(1, (W - left - right) * r.total_sales / max);
      // An inferred artist (known from session items only) may have no name: show its id.
      const label = r.artist_name || r.artist_id;
      const name = label.length > 30 ? label.slice(0, 29) + '…' : label;
      el('text', {x: left - 8, y: y + barH * 0.72, 'text-anchor': 'end'}, svg, name);
      const bar = el('rect', {class: 'bar', x: left, y, width: w, height: barH, rx: 3, fill: COLORS[0]}, svg);
      el('title', {}, bar, `${label} (${r.artist_id}): ${money(r.total_sales)}, ${r.items_sold} songs sold`);
      el('text', {x: left + w + 6, y: y + barH * 0.72}, svg, money(r.total_sales));
    });
    el('line', {class: 'axis', x1: left, x2: left, y1: 0, y2: H - 20}, svg);
    artistBox.dataset.marks = String(rows.length);
  }

  // Sales per month, stacked by the buyer's country (the top countries, the rest as "other").
  const countryBox = document.getElementById('chart-countries');
  function drawCountries() {
    if (!data.countries.length) return empty(countryBox, 'No sales in the BI view.');
    const byCountry = {};
    for (const r of data.countries) byCountry[r.country_code] = (byCountry[r.country_code] || 0) + r.total_sales;
    const top = Object.entries(byCountry).sort((a, b) => b[1] - a[1]).slice(0, data.top_countries).map(e => e[0]);
    const series = [...top, 'other'];
    const months = [...new Set(data.countries.map(r => `${r.session_year}-${String(r.session_month).padStart(2, '0')}`))].sort();
    const cell = {};
    for (const r of data.countries) {
      const m = `${r.session_year}-${String(r.session_month).padStart(2, '0')}`;
      const s = top.includes(r.country_code) ? r.country_code : 'other';
      cell[m] = cell[m] || {};
      cell[m][s] = (cell[m][s] || 0) + r.total_sales;
    }
    const totals = months.map(m => Object.values(cell[m]).reduce((a, b) => a + b, 0));
    const max = Math.max(...totals);
    const W = 640, H = 320, left = 64, bottom = 28, topPad = 18;
    const slot = (W - left - 10) / months.length, barW = Math.min(90, slot * 0.6);
    countryBox.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': 'Sales per month by country'}, countryBox);
    const scale = v => (H - bottom - topPad) * v / max;
    for (let k = 0; k <= 4; k++) {
      const v = max * k / 4, y = H - bottom - scale(v);
      el('line', {class: 'axis', x1: left, x2: W - 10, y1: y, y2: y}, svg);
      el('text', {x: left - 6, y: y + 4, 'text-anchor': 'end'}, svg, money(v));
    }
    let marks = 0;
    months.forEach((m, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      let y = H - bottom;
      series.forEach((s, j) => {
        const v = (cell[m] || {})[s] || 0;
        if (!v) return;
        const h = scale(v);
        y -= h;
        const bar = el('rect', {class: 'bar', x, y, width: barW, height: Math.max(h, 0.5), fill: color(s, j)}, svg);
        el('title', {}, bar, `${m} ${s}: ${money(v)}`);
        marks++;
      });
      el('text', {x: x + barW / 2, y: H - bottom + 16, 'text-anchor': 'middle'}, svg, m);
      el('text', {x: x + barW / 2, y: y - 4, 'text-anchor': 'middle'}, svg, money(totals[i]));
    });
    const legend = document.getElementById('country-legend');
    legend.innerHTML = '';
    series.forEach((s, j) => {
      const span = document.createElement('span');
      const sw = document.createElement('i'); sw.style.background = color(s, j);
      span.appendChild(sw); span.appendChild(document.createTextNode(s));
      legend.appendChild(span);
    });
    countryBox.dataset.marks = String(marks);
  }

  picker.addEventListener('change', () => drawArtists(Number(picker.value)));
  drawArtists(years.length ? years[years.length - 1] : 0);
  if (years.length) picker.value = years[years.length - 1];
  drawCountries();
  document.body.dataset.rendered = String([artistBox, countryBox].filter(b => Number(b.dataset.marks) > 0).length);
})();
"""


def _kpi_id(key) -> str:
    """id="kpi-<key>" for the KPIs a test reads (dashboard_check.py: the inferred members)."""
    return f' id="kpi-{html.escape(key)}"' if key else ""


def kpis_html(kpis: list[tuple[str, str]], ids: dict | None = None) -> str:
    """The KPI cards, each (value, label); ids maps a card's index to its `kpi-<id>`."""
    ids = ids or {}
    return "".join(
        f'<div class="kpi"{_kpi_id(ids.get(i))}><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
        for i, (v, k) in enumerate(kpis)
    )


def html_page(title: str, heading: str, intro: str, main: str, payload: dict, script: str) -> str:
    """The self-contained page: `intro` (HTML) under the heading with the generation time, `main` (HTML) in the
    grid, `payload` as the JSON data the script reads (CHART_JS_PRELUDE: `data`)."""
    # `</` cannot end the script element early once escaped; the JSON stays valid.
    data_json = json.dumps(payload, default=str).replace("</", "<\\/")
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body data-rendered="0">
<header>
<h1>{html.escape(heading)}</h1>
<p>{intro}
Generated {generated}.</p>
</header>
<main>
{main}
</main>
<script type="application/json" id="dashboard-data">{data_json}</script>
<script>{script}</script>
</body>
</html>
"""


def write_page(path: str, page: str) -> None:
    """Writes the page atomically (a reader never sees half a page)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)


def render(summary: dict, wh: dict, top_artists: int = 15, top_countries: int = 8) -> str:
    total_sales = sum(r["total_sales"] for r in wh["countries"])
    quarantined = sum(t["records_quarantined"] for t in summary.get("transform", {}).values())
    failed_rules = sum(
        (not r["passed"]) for t in summary.get("transform", {}).values() for r in t.get("dataset_rules", {}).values()
    )
    windows = summary.get("windows", [])
    period = f"{windows[0]['start_date']} .. {windows[-1]['end_date']}" if windows else "no windows"
    kpis = [
        (f"${total_sales:,.0f}", "total sales"),
        (f"{wh['fact_rows']:,}", "songs sold (fact rows)"),
        (f"{len({r['artist_id'] for r in wh['artists']}):,}", "artists with sales"),
        # 'unknown' is the country of buyers not landed yet (inferred members), not a country.
        (f"{len({r['country_code'] for r in wh['countries'] if r['country_code'] != 'unknown'}):,}", "buyer countries"),
        (f"{quarantined:,}", "records quarantined"),
        ("all passed" if not failed_rules else f"{failed_rules} failed", "dataset rules"),
    ]
    inferred = inferred_counts(summary)
    kpi_ids = {}
    for key, name in INFERRED_KEYS[:2]:  # users and songs; artists are in the summary table
        if key in inferred:
            kpi_ids[len(kpis)] = key
            kpis.append((f"{inferred[key]:,}", f"inferred {name} (not landed yet)"))
    payload = {
        "artists": wh["artists"],
        "countries": wh["countries"],
        "top_artists": top_artists,
        "top_countries": top_countries,
    }
    body = f"""<div class="kpis">{kpis_html(kpis, kpi_ids)}</div>
<section class="panel">
<h2>Top {top_artists} artists by sales<label>year<select id="artist-year"></select></label></h2>
<p class="note">{html.escape(wh["artists_view"])}</p>
<div id="chart-artists" class="chart" data-marks="0"><p class="empty">The chart needs JavaScript.</p></div>
</section>
<section class="panel">
<h2>Sales per month by buyer country</h2>
<p class="note">{html.escape(wh["countries_view"])} (top {top_countries} countries, the rest as "other")</p>
<div id="chart-countries" class="chart" data-marks="0"><p class="empty">The chart needs JavaScript.</p></div>
<div id="country-legend" class="legend"></div>
</section>
{summary_sections(summary, wh["fact_rows"])}"""
    intro = (f"Local pipeline run over {html.escape(period)}: extract, transform (Iceberg), data quality, "
             "dbt star schema.")
    return html_page("DeFtunes: local pipeline run", "DeFtunes sales", intro, body, payload, SCRIPT)


def dashboard_main(description: str, render_page, read) -> None:
    """The command line of a dashboard: `--warehouse --summary --out`; writes render_page(summary, read(warehouse))."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--summary", required=True, help="run-summary.json written by `deftunes run`")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.summary, encoding="utf-8") as f:
        summary = json.load(f)
    write_page(args.out, render_page(summary, read(args.warehouse)))
    print(args.out)


def main() -> None:
    dashboard_main(__doc__.splitlines()[0], render, read_warehouse)


if __name__ == "__main__":
    main()
