"""Writes the self-contained HTML dashboard of a Sparkify run: song plays per hour of day, per user level and
per location (top 15) from the songplays star schema, and the run summary's row counts.

Usage: sparkify_dashboard.py --warehouse <warehouse.duckdb> --summary <run-summary.json> --out <dashboard.html>

Built like dashboard.py (its page shell, styles, table and chart helpers): self-contained, nothing loaded from
anywhere; each chart container gets `data-marks` (bars drawn) and the body `data-rendered` (charts drawn),
which sparkify_dashboard_check.py reads in headless Chromium. The summary's `row_counts` ({table: rows}) may
be absent: the page says so.
"""
import html
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard import (  # noqa: E402
    CHART_JS_PRELUDE, chart_panel, dashboard_main, html_page, kpis_html, query_rows, row_counts_panel,
    run_period, schema_of,
)
from duckdb_env import connect  # noqa: E402

TOP_LOCATIONS = 15
UNKNOWN = "(unknown)"


def read_warehouse(path: str, top_locations: int = TOP_LOCATIONS) -> dict:
    con = connect(path, read_only=True)
    try:
        s = schema_of(con, "songplays")
        hours = query_rows(
            con,
            f"SELECT t.hour, count(*) AS plays FROM {s}.songplays AS sp JOIN {s}.time AS t "
            "ON t.start_time = sp.start_time GROUP BY t.hour ORDER BY t.hour",
        )
        levels = query_rows(
            con, f"SELECT level, count(*) AS plays FROM {s}.songplays GROUP BY level ORDER BY plays DESC, level"
        )
        locations = query_rows(
            con,
            f"SELECT coalesce(location, '{UNKNOWN}') AS location, count(*) AS plays FROM {s}.songplays "
            f"GROUP BY 1 ORDER BY plays DESC, location LIMIT {int(top_locations)}",
        )
        totals = query_rows(
            con,
            f"SELECT (SELECT count(*) FROM {s}.songplays) AS songplays, "
            f"(SELECT count(song_id) FROM {s}.songplays) AS matched, "
            f"(SELECT count(*) FROM {s}.users) AS users, (SELECT count(*) FROM {s}.songs) AS songs, "
            f"(SELECT count(*) FROM {s}.artists) AS artists",
        )[0]
    finally:
        con.close()
    return {"schema": s, "hours": hours, "levels": levels, "locations": locations, "totals": totals,
            "top_locations": top_locations}


SCRIPT = CHART_JS_PRELUDE + r"""
  const count = v => v.toLocaleString('en-US');

  // Vertical bars over fixed slots (e.g. the 24 hours of a day; a slot without plays draws no bar).
  function columns(box, slots, rows, key, what) {
    if (!rows.length) return empty(box, 'No plays.');
    const byKey = Object.fromEntries(rows.map(r => [String(r[key]), r.plays]));
    const W = 640, H = 280, left = 56, bottom = 26, topPad = 18;
    const slot = (W - left - 10) / slots.length, barW = Math.max(4, slot * 0.7);
    // Four gridlines at a whole, round step (1, 2, 3 .. times a power of ten).
    const raw = Math.max(...rows.map(r => r.plays)) / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    const step = Math.max(1, Math.ceil(raw / mag) * mag), max = step * 4;
    const scale = v => (H - bottom - topPad) * v / max;
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    for (let k = 0; k <= 4; k++) {
      const v = step * k, y = H - bottom - scale(v);
      el('line', {class: 'axis', x1: left, x2: W - 10, y1: y, y2: y}, svg);
      el('text', {x: left - 6, y: y + 4, 'text-anchor': 'end'}, svg, count(v));
    }
    let marks = 0;
    slots.forEach((s, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      el('text', {x: x + barW / 2, y: H - bottom + 16, 'text-anchor': 'middle'}, svg, String(s));
      const v = byKey[String(s)];
      if (!v) return;
      const bar = el('rect', {class: 'bar', x, y: H - bottom - scale(v), width: barW, height: Math.max(scale(v), 0.5), rx: 2, fill: COLORS[0]}, svg);
      el('title', {}, bar, `${s}: ${count(v)} plays`);
      marks++;
    });
    box.dataset.marks = String(marks);
  }

  // Horizontal bars, one per row, labelled.
  function barsH(box, rows, key, what, j) {
    if (!rows.length) return empty(box, 'No plays.');
    const W = 640, left = 230, right = 70, barH = 18, gap = 6, top = 8;
    const H = top + rows.length * (barH + gap) + 8;
    const max = Math.max(...rows.map(r => r.plays));
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    rows.forEach((r, i) => {
      const y = top + i * (barH + gap);
      const w = Math.max(1, (W - left - right) * r.plays / max);
      const label = String(r[key]);
      el('text', {x: left - 8, y: y + barH * 0.72, 'text-anchor': 'end'}, svg, label.length > 34 ? label.slice(0, 33) + '…' : label);
      const bar = el('rect', {class: 'bar', x: left, y, width: w, height: barH, rx: 3, fill: COLORS[j % COLORS.length]}, svg);
      el('title', {}, bar, `${label}: ${count(r.plays)} plays`);
      el('text', {x: left + w + 6, y: y + barH * 0.72}, svg, count(r.plays));
    });
    el('line', {class: 'axis', x1: left, x2: left, y1: 0, y2: H - 4}, svg);
    box.dataset.marks = String(rows.length);
  }

  const boxes = ['chart-hours', 'chart-levels', 'chart-locations'].map(id => document.getElementById(id));
  columns(boxes[0], [...Array(24).keys()], data.hours, 'hour', 'Song plays per hour of day (UTC)');
  barsH(boxes[1], data.levels, 'level', 'Song plays per user level', 1);
  barsH(boxes[2], data.locations, 'location', 'Song plays per location', 2);
  document.body.dataset.rendered = String(boxes.filter(b => Number(b.dataset.marks) > 0).length);
})();
"""


def render(summary: dict, wh: dict) -> str:
    t = wh["totals"]
    matched = f"{100 * t['matched'] / t['songplays']:.1f}%" if t["songplays"] else "n/a"
    kpis = [
        (f"{t['songplays']:,}", "song plays"),
        (matched, "plays matched to a song"),
        (f"{t['users']:,}", "users"),
        (f"{t['songs']:,}", "songs"),
        (f"{t['artists']:,}", "artists"),
    ]
    s = wh["schema"]
    body = "\n".join([
        f'<div class="kpis">{kpis_html(kpis)}</div>',
        chart_panel("chart-hours", "Song plays per hour of day", f"{s}.songplays by {s}.time.hour (UTC)"),
        chart_panel("chart-levels", "Song plays per user level", f"{s}.songplays.level (free or paid at the play)"),
        chart_panel("chart-locations", f"Song plays per location (top {wh['top_locations']})",
               f"{s}.songplays.location"),
        row_counts_panel(summary),
    ])
    period = run_period(summary)
    intro = (f"Local pipeline run{html.escape(period)}: event logs and songs into the Iceberg tables of namespace "
             "sparkify, dbt songplays star schema.")
    payload = {"hours": wh["hours"], "levels": wh["levels"], "locations": wh["locations"]}
    return html_page("Sparkify: local pipeline run", "Sparkify song plays", intro, body, payload, SCRIPT)


def main() -> None:
    dashboard_main(__doc__.splitlines()[0], render, read_warehouse)


if __name__ == "__main__":
    main()
