"""Writes the self-contained HTML dashboard of a spotify run: artists, albums, tracks, playlist additions and artist
versions, the top 15 artists by playlist additions, the top genres, additions per month, from the BI views and the
star schema of the playlist additions, and the run summary's row counts.

Usage: spotify_dashboard.py --warehouse <warehouse.duckdb> --summary <run-summary.json> --out <dashboard.html>

Built like classicmodels_dashboard.py (dashboard.py's page shell, styles, table and chart helpers): self-contained,
nothing loaded from anywhere; each chart container gets `data-marks` (bars drawn) and the body `data-rendered`
(charts drawn), which spotify_dashboard_check.py reads in headless Chromium. The KPIs count the current rows of
the type-2 dimensions (artists, albums: is_current), the tracks, the rows of fact_playlist_additions and all the
rows of dim_artists (artist versions); each has an id (kpi-artists, kpi-albums, kpi-tracks, kpi-additions,
kpi-artist_versions). The summary's `row_counts` ({table: rows}) may be absent: the page says so.
"""
import html
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard import (  # noqa: E402
    CHART_JS_PRELUDE, chart_panel, dashboard_main, html_page, html_table, kpis_html, month_slots, query_rows,
    row_counts_panel, schema_of,
)
from duckdb_env import connect  # noqa: E402

TOP_ARTISTS = 15
TOP_GENRES = 15
# KPI id -> label, in page order.
KPIS = {"artists": "artists", "albums": "albums", "tracks": "tracks", "additions": "playlist additions",
        "artist_versions": "artist versions (type 2)"}


def read_warehouse(path: str, top_artists: int = TOP_ARTISTS, top_genres: int = TOP_GENRES) -> dict:
    con = connect(path, read_only=True)
    try:
        serving = schema_of(con, "fact_playlist_additions")
        artists_view = f"{schema_of(con, 'top_artists')}.top_artists"
        genres_view = f"{schema_of(con, 'top_genres')}.top_genres"
        artists = query_rows(
            con,
            "SELECT artist_id, coalesce(artist_name, artist_id) AS artist, additions, playlists, popularity, "
            f"popularity_change, versions FROM {artists_view} "
            f"ORDER BY additions DESC, artist_id LIMIT {int(top_artists)}",
        )
        genres = query_rows(
            con,
            f"SELECT genre, additions, artists FROM {genres_view} ORDER BY additions DESC, genre "
            f"LIMIT {int(top_genres)}",
        )
        months = query_rows(
            con,
            "SELECT strftime(d.month_start, '%Y-%m') AS month, count(*) AS additions "
            f"FROM {serving}.fact_playlist_additions AS f JOIN {serving}.dim_dates AS d "
            "ON d.date_key = f.added_date_key GROUP BY 1 ORDER BY 1",
        )
        totals = query_rows(
            con,
            f"SELECT (SELECT count(*) FROM {serving}.dim_artists WHERE is_current) AS artists, "
            f"(SELECT count(*) FROM {serving}.dim_albums WHERE is_current) AS albums, "
            f"(SELECT count(*) FROM {serving}.dim_tracks) AS tracks, "
            f"(SELECT count(*) FROM {serving}.fact_playlist_additions) AS additions, "
            f"(SELECT count(*) FROM {serving}.dim_artists) AS artist_versions",
        )[0]
    finally:
        con.close()
    return {"serving": serving, "artists_view": artists_view, "genres_view": genres_view, "artists": artists,
            "genres": genres, "months": months, "slots": month_slots(months), "totals": totals,
            "top_artists": top_artists, "top_genres": top_genres}


SCRIPT = CHART_JS_PRELUDE + r"""
  const count = v => v.toLocaleString('en-US');
  const signed = v => (v > 0 ? '+' : '') + count(v);

  // Vertical bars over fixed slots (the months from the first to the last; a month without additions draws no bar).
  function columns(box, slots, rows, key, what) {
    if (!rows.length) return empty(box, 'No playlist additions.');
    const byKey = Object.fromEntries(rows.map(r => [String(r[key]), r.additions]));
    const W = 640, H = 300, left = 56, bottom = 52, topPad = 18;
    const slot = (W - left - 10) / slots.length, barW = Math.max(3, slot * 0.7);
    // Four gridlines at a whole, round step (1, 2, 3 .. times a power of ten).
    const raw = Math.max(...rows.map(r => r.additions)) / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    const step = Math.max(1, Math.ceil(raw / mag) * mag), max = step * 4;
    const scale = v => (H - bottom - topPad) * Math.max(v, 0) / max;
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    for (let k = 0; k <= 4; k++) {
      const v = step * k, y = H - bottom - scale(v);
      el('line', {class: 'axis', x1: left, x2: W - 10, y1: y, y2: y}, svg);
      el('text', {x: left - 6, y: y + 4, 'text-anchor': 'end'}, svg, count(v));
    }
    // Label every month while they fit, else every k-th (a few years of months).
    const every = Math.max(1, Math.ceil(slots.length / 30));
    let marks = 0;
    slots.forEach((s, i) => {
      const x = left + i * slot + (slot - barW) / 2, cx = x + barW / 2, ly = H - bottom + 12;
      if (i % every === 0) {
        el('text', {x: cx, y: ly, 'text-anchor': 'end', transform: `rotate(-45 ${cx} ${ly})`}, svg, String(s));
      }
      const v = byKey[String(s)];
      if (v === undefined) return;
      const bar = el('rect', {class: 'bar', x, y: H - bottom - scale(v), width: barW, height: Math.max(scale(v), 0.5), rx: 2, fill: COLORS[0]}, svg);
      el('title', {}, bar, `${s}: ${count(v)} additions`);
      marks++;
    });
    box.dataset.marks = String(marks);
  }

  // Horizontal bars of additions, one per row, labelled; `detail` gives the bar's tooltip tail.
  function barsH(box, rows, key, what, j, detail) {
    if (!rows.length) return empty(box, 'No playlist additions.');
    const W = 640, left = 200, right = 70, barH = 18, gap = 6, top = 8;
    const H = top + rows.length * (barH + gap) + 8;
    const max = Math.max(...rows.map(r => r.additions)) || 1;
    box.innerHTML = '';
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': what}, box);
    rows.forEach((r, i) => {
      const y = top + i * (barH + gap);
      const w = Math.max(1, (W - left - right) * Math.max(r.additions, 0) / max);
      const label = String(r[key]);
      el('text', {x: left - 8, y: y + barH * 0.72, 'text-anchor': 'end'}, svg, label.length > 30 ? label.slice(0, 29) + '…' : label);
      const bar = el('rect', {class: 'bar', x: left, y, width: w, height: barH, rx: 3, fill: COLORS[j % COLORS.length]}, svg);
      el('title', {}, bar, `${label}: ${count(r.additions)} additions, ${detail(r)}`);
      el('text', {x: left + w + 6, y: y + barH * 0.72}, svg, count(r.additions));
    });
    el('line', {class: 'axis', x1: left, x2: left, y1: 0, y2: H - 4}, svg);
    box.dataset.marks = String(rows.length);
  }

  const boxes = ['chart-artists', 'chart-genres', 'chart-months'].map(id => document.getElementById(id));
  const change = r => r.popularity_change == null ? '?' : signed(r.popularity_change);
  barsH(boxes[0], data.artists, 'artist', 'Top artists by playlist additions', 0,
        r => `${count(r.playlists)} playlists, popularity ${r.popularity ?? '?'} `
             + `(${change(r)} since its first version, ${r.versions ?? '?'} versions)`);
  barsH(boxes[1], data.genres, 'genre', 'Top genres by playlist additions', 1, r => `${count(r.artists)} artists`);
  columns(boxes[2], data.slots, data.months, 'month', 'Playlist additions per month');
  document.body.dataset.rendered = String(boxes.filter(b => Number(b.dataset.marks) > 0).length);
})();
"""


def render(summary: dict, wh: dict) -> str:
    t = wh["totals"]
    kpis = [(f"{t[key]:,}", label) for key, label in KPIS.items()]
    s = wh["serving"]
    top = html_table(
        ["artist", "additions", "playlists", "popularity", "change", "versions"],
        [[r["artist"], r["additions"], r["playlists"], "" if r["popularity"] is None else r["popularity"],
          "" if r["popularity_change"] is None else f"{r['popularity_change']:+d}".replace("+0", "0"),
          "" if r["versions"] is None else r["versions"]] for r in wh["artists"]],
    )
    body = "\n".join([
        f'<div class="kpis">{kpis_html(kpis, dict(enumerate(KPIS)))}</div>',
        chart_panel("chart-artists", f"Top {wh['top_artists']} artists by playlist additions",
               f"{wh['artists_view']}.additions (name, popularity: the artist's current version)"),
        chart_panel("chart-genres", f"Top genres by playlist additions (top {wh['top_genres']})",
               f"{wh['genres_view']}.additions by the artist's primary genre ('unknown': none)"),
        chart_panel("chart-months", "Playlist additions per month",
               f"{s}.fact_playlist_additions by month of added_at ({s}.dim_dates)"),
        f'<section class="panel"><h2>Top artists: popularity change since their first version</h2>{top}</section>',
        row_counts_panel(summary),
    ])
    intro = ("Local pipeline run: a Spotify-style catalogue API (artists, albums, tracks, playlists) into the Iceberg "
             f"tables of namespace spotify, dbt type-2 dimensions of artists and albums and the playlist-additions "
             f"star schema ({html.escape(s)}.fact_playlist_additions) with its BI views.")
    payload = {"artists": wh["artists"], "genres": wh["genres"], "slots": wh["slots"], "months": wh["months"]}
    return html_page("spotify: local pipeline run", "spotify playlist additions", intro, body, payload, SCRIPT)


def main() -> None:
    dashboard_main(__doc__.splitlines()[0], render, read_warehouse)


if __name__ == "__main__":
    main()
