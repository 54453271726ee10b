"""Builds the Sparkify dbt project (pipelines/sparkify/dbt) on a scratch DuckDB warehouse of hand-written rows,
without any Iceberg catalog, and checks what the build made of them.

The rows go straight into tables `sparkify.staging_events` / `sparkify.staging_songs` (the Iceberg tables'
columns, pipelines/sparkify/pipeline.toml, then the transform's metadata columns), and dbt runs with
`--vars '{skip_transform_views: true}'`, so the on-run-start hook leaves them as they are (a real build
re-points that schema at the catalog's Iceberg snapshots and fails without DEFTUNES_CATALOG). They cover a
logged-out event, an event with two versions, a play matching two songs of the same title and artist, a near
miss (|length - duration| = 1 s), an unmatched play, a song with two versions and an artist whose songs disagree.

Usage: sparkify_scratch_check.py [--workdir DIR]   (warehouse and dbt's target/, logs/ there; a temp dir otherwise)
Exits non-zero on failure (dbt build, any dbt test, or the checks below); prints one JSON line on success.
"""
import datetime as dt
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scratch  # noqa: E402
from dbt_cli import REPO  # noqa: E402
from duckdb_env import connect  # noqa: E402

PROJECT = os.path.join(REPO, "pipelines", "sparkify", "dbt")
SCHEMA = "sparkify"
SONG_COLUMNS = [
    ("song_id", "VARCHAR"), ("num_songs", "INTEGER"), ("title", "VARCHAR"), ("artist_id", "VARCHAR"),
    ("artist_name", "VARCHAR"), ("artist_location", "VARCHAR"), ("artist_latitude", "DOUBLE"),
    ("artist_longitude", "DOUBLE"), ("duration", "DOUBLE"), ("year", "INTEGER"),
]
EVENT_COLUMNS = [
    ("session_id", "BIGINT"), ("item_in_session", "INTEGER"), ("ts", "TIMESTAMP"), ("user_id", "VARCHAR"),
    ("first_name", "VARCHAR"), ("last_name", "VARCHAR"), ("gender", "VARCHAR"), ("level", "VARCHAR"),
    ("auth", "VARCHAR"), ("page", "VARCHAR"), ("method", "VARCHAR"), ("status", "INTEGER"), ("song", "VARCHAR"),
    ("artist", "VARCHAR"), ("length", "DOUBLE"), ("location", "VARCHAR"), ("user_agent", "VARCHAR"),
    ("registration", "BIGINT"),
]
V1, V2 = dt.date(2018, 11, 1), dt.date(2018, 11, 2)

# song_id, num_songs, title, artist_id, artist_name, location, lat, lon, duration, year, ingest_on
SONGS = [
    ("SOAAA001", 1, "Song A", "ARA", "Artist A", "Paris", 48.85, 2.35, 200.0, 2001, V1),
    ("SOAAA002", 1, "Song A", "ARA", "Artist A", "", None, None, 200.4, 0, V1),  # same title and artist
    ("SOBBB001", 1, "Song B", "ARB", "Artist B", "", None, None, 180.0, 1999, V1),
    ("SOBBB002", 1, "Other B", "ARB", "Artist B & Co", "Berlin", 52.52, 13.40, 150.0, 2005, V1),
    ("SOCCC001", 1, "Song C", "ARC", "Artist C", "Oslo", 59.91, 10.75, 100.0, 2010, V1),
    ("SOCCC001", 1, "Song C", "ARC", "Artist C", "Oslo", 59.91, 10.75, 101.0, 2010, V2),  # a later version
]

UA = "Mozilla/5.0"
JANE = ("10", "Jane", "Doe", "F")
JOHN = ("20", "John", "Roe", "M")
ANON = ("", "", "", "")


def _event(session, item, ts, who, level, page, song=None, artist=None, length=None, ingest_on=V1,
           auth="Logged In", location="Austin, TX"):
    return (session, item, dt.datetime.fromisoformat(ts), *who, level, auth, page, "PUT" if song else "GET", 200,
            song, artist, length, location, UA, 1540000000000 if who[0] else None, ingest_on)


EVENTS = [
    _event(1, 0, "2018-11-05 08:00:00", JANE, "free", "Home"),
    _event(1, 1, "2018-11-05 08:01:00", JANE, "free", "NextSong", "Song A", "Artist A", 200.3),  # SOAAA002 (0.1)
    _event(1, 2, "2018-11-05 08:05:00", JANE, "free", "NextSong", "Song B", "Artist B", 170.0),  # old version
    _event(1, 2, "2018-11-05 08:05:00", JANE, "free", "NextSong", "Song B", "Artist B", 180.5, V2),  # SOBBB001
    _event(1, 3, "2018-11-05 08:08:00", JANE, "free", "NextSong", "Song B", "Artist B", 181.0),  # near miss: 1.0
    _event(1, 4, "2018-11-05 08:11:00", JANE, "free", "NextSong", "Nowhere", "Nobody", 120.0),  # unmatched
    _event(1, 5, "2018-11-05 08:13:00", JANE, "free", "Submit Upgrade"),
    _event(2, 0, "2018-11-06 21:30:00", JANE, "paid", "NextSong", "Song C", "Artist C", 100.5,
           location="Boston, MA"),  # SOCCC001 (its latest version, 101.0)
    _event(3, 0, "2018-11-06 22:00:00", ANON, "free", "Home", auth="Logged Out", location=""),
    _event(3, 1, "2018-11-06 22:01:00", ANON, "free", "Login", auth="Logged Out", location=""),
    _event(4, 0, "2018-11-07 08:15:00", JOHN, "paid", "NextSong", "Song A", "Artist A", 199.5),  # SOAAA001 (0.5)
    _event(4, 1, "2018-11-07 08:20:00", JOHN, "free", "Submit Downgrade"),
]

# What the build must make of them.
WANT_PLAYS = {  # (session_id, item_in_session) -> song_id
    (1, 1): "SOAAA002", (1, 2): "SOBBB001", (1, 3): None, (1, 4): None, (2, 0): "SOCCC001", (4, 0): "SOAAA001",
}
WANT_USERS = {"10": "paid", "20": "free"}
WANT_ARTISTS = {"ARA": ("Artist A", "Paris"), "ARB": ("Artist B & Co", "Berlin"), "ARC": ("Artist C", "Oslo")}


def _meta(table: str, i: int, ingest_on) -> tuple:
    processing = dt.datetime.combine(ingest_on, dt.time(12))
    return (ingest_on, processing, f"s3_{table}", f"landing/{table}/{ingest_on}/{i}.json")


def write_warehouse(path: str) -> None:
    scratch.write_warehouse(path, SCHEMA, {"staging_songs": (SONG_COLUMNS, SONGS),
                                           "staging_events": (EVENT_COLUMNS, EVENTS)}, _meta)


def build(workdir: str, warehouse: str) -> None:
    scratch.build(PROJECT, SCHEMA, workdir, warehouse, unset=("DEFTUNES_CATALOG", "DBT_SERVING_SCHEMA"))


def check(warehouse: str) -> dict:
    con = connect(warehouse, read_only=True)
    try:
        s = "sparkify_serving"
        plays = {(r[0], r[1]): r[2] for r in con.execute(
            f"SELECT session_id, item_in_session, song_id FROM {s}.songplays").fetchall()}
        users = dict(con.execute(f"SELECT user_id, level FROM {s}.users").fetchall())
        artists = {r[0]: (r[1], r[2]) for r in con.execute(f"SELECT artist_id, name, location FROM {s}.artists")
                   .fetchall()}
        songs = dict(con.execute(f"SELECT song_id, duration FROM {s}.songs").fetchall())
        times = con.execute(f"SELECT count(*), count(DISTINCT start_time) FROM {s}.time").fetchone()
    finally:
        con.close()
    failures = []
    for what, got, want in (("songplays", plays, WANT_PLAYS), ("users", users, WANT_USERS),
                            ("artists", artists, WANT_ARTISTS)):
        if got != want:
            failures.append(f"{what}: {got}, want {want}")
    if songs.get("SOCCC001") != 101.0 or len(songs) != 5:
        failures.append(f"songs: {songs}, want 5 songs with SOCCC001 at its latest version (101.0)")
    if times != (len(WANT_PLAYS), len(WANT_PLAYS)):
        failures.append(f"time: {times[0]} rows, {times[1]} distinct, want {len(WANT_PLAYS)}")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))
    print(f"  ok  {len(plays)} songplays ({sum(v is None for v in plays.values())} unmatched), "
          f"{len(users)} users, {len(songs)} songs, {len(artists)} artists as expected")
    return {"songplays": len(plays), "users": len(users), "songs": len(songs), "artists": len(artists)}


def main() -> None:
    scratch.main(__doc__.splitlines()[0], "sparkify-scratch-", write_warehouse, build, check)


if __name__ == "__main__":
    main()
