"""Opens the spotify dashboard (spotify_dashboard.py) in headless Chromium and checks that it shows its charts and
the warehouse's counts.

Usage: spotify_dashboard_check.py <dashboard.html> --warehouse <warehouse.duckdb>
                                  [--summary <run-summary.json>] [--screenshot out.png]

The page is rendered as dashboard_check.py does (same Chromium flags and DOM reader). Asserts: nothing outside
the page is referenced; all three charts drew, each with as many bars as the warehouse gives (top artists, top
genres, months with additions), none empty; the KPIs equal the counts queried here from the warehouse itself
(playlist additions: the rows of fact_playlist_additions, which also equal the additions top_genres adds up; artist
versions: the rows of dim_artists; artists and albums: their current rows; tracks: dim_tracks); the row-count table
is there when the summary (if given) has `row_counts`.
Exits non-zero with the reasons on failure.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dashboard import schema_of  # noqa: E402
from dashboard_check import pipeline_check_main  # noqa: E402
from duckdb_env import connect  # noqa: E402
from spotify_dashboard import KPIS, read_warehouse  # noqa: E402

CHARTS = {"chart-artists": "artists", "chart-genres": "genres", "chart-months": "months"}


def warehouse_counts(warehouse: str) -> dict:
    """What each KPI must show, queried independently of the dashboard's own queries."""
    con = connect(warehouse, read_only=True)
    try:
        s = schema_of(con, "fact_playlist_additions")
        bi = schema_of(con, "top_genres")
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        counts = {
            "artists": one(f"SELECT count(DISTINCT artist_id) FROM {s}.dim_artists"),
            "albums": one(f"SELECT count(DISTINCT album_id) FROM {s}.dim_albums"),
            "tracks": one(f"SELECT count(DISTINCT track_id) FROM {s}.dim_tracks"),
            "additions": one(f"SELECT count(*) FROM {s}.fact_playlist_additions"),
            "artist_versions": one(f"SELECT count(*) FROM {s}.dim_artists"),
        }
        genre_additions = one(f"SELECT coalesce(sum(additions), 0) FROM {bi}.top_genres")
    finally:
        con.close()
    if genre_additions != counts["additions"]:
        raise SystemExit(f"spotify dashboard check FAILED: top_genres adds up to {genre_additions} additions, "
                         f"fact_playlist_additions has {counts['additions']}")
    return counts


def count_kpis(warehouse: str, dom, failures: list) -> str:
    """Each KPI equals the warehouse's count."""
    counts = warehouse_counts(warehouse)
    for key in KPIS:
        shown = dom.kpis.get(f"kpi-{key}")
        if shown is None:
            failures.append(f"the page shows no {key} KPI (kpi-{key})")
        elif shown.replace(",", "").strip() != str(counts[key]):
            failures.append(f"KPI {key} shows {shown!r}, the warehouse has {counts[key]}")
    return ", ".join(f"{k} {counts[k]:,}" for k in KPIS) + "; "


def main() -> None:
    pipeline_check_main(__doc__.splitlines()[0], "spotify", CHARTS, read_warehouse, "playlist additions",
                        count_kpis, tables=2)


if __name__ == "__main__":
    main()
