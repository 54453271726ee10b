"""Builds the spotify dbt project (pipelines/spotify/dbt) on a scratch DuckDB warehouse of hand-written rows, without
any Iceberg catalog, and checks what the build made of them: above all the type-2 history of dim_artists and
dim_albums.

The rows go straight into tables `spotify.<table>`, whose columns are read from pipelines/spotify/pipeline.toml
(its [tables.*] columns in order, then the transform's metadata columns), and dbt runs with
`--vars '{skip_transform_views: true}'`, so the on-run-start hook leaves them as they are (a real build re-points
that schema at the catalog's Iceberg snapshots and fails without DEFTUNES_CATALOG). They cover an artist with
three versions whose popularity goes 50 -> 61 -> 50 (three type-2 rows: a change back is a change), an artist
with two versions that differ only in primary_genre (one row, the latest genre: type 1), an artist with two
versions on the same ingest_on (the later processing is the later version), an album with two versions, a track
with two versions (the latest wins), a playlist renamed between runs (its additions land again: one fact row
each, the new name), a playlist addition without an artist (the track's is used) and an artist without
additions. The rows are inserted out of version order on purpose.

Usage: spotify_scratch_check.py [--workdir DIR]   (warehouse and dbt's target/, logs/ there; a temp dir otherwise)
Exits non-zero on failure (dbt build, any dbt test, or the checks below); prints one JSON line on success.
"""
import datetime as dt
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scratch  # noqa: E402
from dbt_cli import REPO  # noqa: E402
from duckdb_env import connect  # noqa: E402

PIPELINE = os.path.join(REPO, "pipelines", "spotify")
PROJECT = os.path.join(PIPELINE, "dbt")
SCHEMA = "spotify"
SERVING = "spotify_serving"
BI = "spotify_bi"

# Versions: (ingest_on, hour of processing_timestamp), one per run. V1b is V1's day, processed later.
V1, V1b, V2, V3 = (dt.date(2025, 3, 1), 12), (dt.date(2025, 3, 1), 13), (dt.date(2025, 3, 2), 12), \
    (dt.date(2025, 3, 3), 12)
ts = dt.datetime.fromisoformat


def at(version) -> dt.datetime:
    """The processing_timestamp of a version."""
    return dt.datetime.combine(version[0], dt.time(version[1]))


ARTISTS = [  # artist_id, name, primary_genre, popularity, followers
    ("art_aurora", "Aurora Lane", "pop", 61, 1000, V2),  # out of order on purpose
    ("art_aurora", "Aurora Lane", "pop", 50, 1000, V1),
    ("art_aurora", "Aurora Lane", "pop", 50, 1000, V3),  # changed back: a third version
    ("art_basalt", "Basalt", "rock", 40, 500, V1),
    ("art_basalt", "Basalt", "indie rock", 40, 500, V2),  # only the genre changed: no new type-2 row
    ("art_cobalt", "Cobalt Choir", None, 70, 9000, V1),  # no genre
    ("art_delta", "Delta Drift", "pop", 28, 150, V1b),  # same day as the next, processed later: the later version
    ("art_delta", "Delta Drift", "pop", 20, 100, V1),
    ("art_ember", "Ember", "jazz", 10, 10, V1),  # no playlist additions
]
ALBUMS = [  # album_id, name, album_type, release_date, release_date_precision, total_tracks, popularity, label,
    #       artist_id
    ("alb_aurora", "First Light", "album", "2021-03-05", "day", 2, 30, "Lane Records", "art_aurora", V1),
    ("alb_aurora", "First Light", "album", "2021-03-05", "day", 2, 35, "Lane Records", "art_aurora", V2),
    ("alb_basalt", "Stone", "album", "1999", "year", 1, 45, "Rock Co", "art_basalt", V1),
    ("alb_cobalt", "Hymns", "compilation", "2010-10-10", "day", 1, 50, "Choir Label", "art_cobalt", V1),
    ("alb_delta", "Drift", "single", "2024-06-01", "day", 1, 20, "Indie", "art_delta", V1),
    ("alb_ember", "Sparks", "album", "2015", "year", 1, 5, "Jazz House", "art_ember", V1),
]
TRACKS = [  # track_id, name, duration_ms, explicit, popularity, track_number, album_id, artist_id
    ("trk_dawn", "Dawn", 200000, False, 60, 1, "alb_aurora", "art_aurora", V1),
    ("trk_dawn", "Dawn", 200000, False, 65, 1, "alb_aurora", "art_aurora", V2),  # latest: popularity 65
    ("trk_dusk", "Dusk", 180000, True, 55, 2, "alb_aurora", "art_aurora", V1),
    ("trk_granite", "Granite", 240000, False, 40, 1, "alb_basalt", "art_basalt", V1),
    ("trk_psalm", "Psalm", 300000, False, 50, 1, "alb_cobalt", "art_cobalt", V1),
    ("trk_float", "Float", 150000, False, 20, 1, "alb_delta", "art_delta", V1),
    ("trk_flame", "Flame", 210000, False, 5, 1, "alb_ember", "art_ember", V1),
]
MORNING, FOCUS, DEEP_FOCUS = ("pl_morning", "Morning Mix", "user_ann"), ("pl_focus", "Focus", "user_bob"), \
    ("pl_focus", "Deep Focus", "user_bob")
PLAYLIST_TRACKS = [  # playlist_id, playlist_name, owner_id, position, track_id, album_id, artist_id, added_at,
    #                  added_by
    (*MORNING, 0, "trk_dawn", "alb_aurora", "art_aurora", ts("2024-12-30 08:00:00"), "user_ann", V1),
    (*MORNING, 1, "trk_granite", "alb_basalt", "art_basalt", ts("2025-01-01 09:00:00"), "user_ann", V1),
    (*MORNING, 2, "trk_dusk", "alb_aurora", "art_aurora", ts("2025-03-01 10:00:00"), "user_ann", V2),  # new
    (*MORNING, 3, "trk_float", "alb_delta", "art_delta", ts("2025-03-01 11:00:00"), "user_bob", V2),  # new
    (*FOCUS, 0, "trk_dawn", "alb_aurora", "art_aurora", ts("2025-01-15 07:30:00"), "user_bob", V1),
    (*FOCUS, 1, "trk_psalm", "alb_cobalt", None, ts("2025-02-03 20:00:00"), "user_bob", V1),  # no artist
    # The playlist renamed: its additions land again, as new versions.
    (*DEEP_FOCUS, 0, "trk_dawn", "alb_aurora", "art_aurora", ts("2025-01-15 07:30:00"), "user_bob", V2),
    (*DEEP_FOCUS, 1, "trk_psalm", "alb_cobalt", None, ts("2025-02-03 20:00:00"), "user_bob", V2),
]
ROWS = {"artists": ARTISTS, "albums": ALBUMS, "tracks": TRACKS, "playlist_tracks": PLAYLIST_TRACKS}
SOURCE_OF = {"artists": "artists", "albums": "albums", "tracks": "tracks", "playlist_tracks": "playlists"}

# What the build must make of them (worked out by hand, not by the models' SQL).
# dim_artists: (artist_id, version_number) -> (popularity, followers, valid_from, valid_to, is_current)
WANT_ARTIST_VERSIONS = {
    ("art_aurora", 1): (50, 1000, at(V1), at(V2), False),
    ("art_aurora", 2): (61, 1000, at(V2), at(V3), False),
    ("art_aurora", 3): (50, 1000, at(V3), None, True),
    ("art_basalt", 1): (40, 500, at(V1), None, True),
    ("art_cobalt", 1): (70, 9000, at(V1), None, True),
    ("art_delta", 1): (20, 100, at(V1), at(V1b), False),
    ("art_delta", 2): (28, 150, at(V1b), None, True),
    ("art_ember", 1): (10, 10, at(V1), None, True),
}
WANT_BASALT = ("indie rock", 2)  # (primary_genre: the latest, type 1; lake_versions: both collapsed into one row)
# dim_albums: (album_id, version_number) -> (popularity, valid_from, valid_to, is_current)
WANT_ALBUM_VERSIONS = {
    ("alb_aurora", 1): (30, at(V1), at(V2), False),
    ("alb_aurora", 2): (35, at(V2), None, True),
    ("alb_basalt", 1): (45, at(V1), None, True),
    ("alb_cobalt", 1): (50, at(V1), None, True),
    ("alb_delta", 1): (20, at(V1), None, True),
    ("alb_ember", 1): (5, at(V1), None, True),
}


def surrogate_key(*parts) -> str:
    """The project's surrogate_key macro in Python: md5 of the parts joined by '-'."""
    return hashlib.md5("-".join(str(p) for p in parts).encode()).hexdigest()


# fact_playlist_additions: (playlist_id, track_id, added_at) -> (artist_id, artist_version_key, added_date_key,
# position)
WANT_FACT = {
    ("pl_morning", "trk_dawn", ts("2024-12-30 08:00:00")): ("art_aurora", surrogate_key("art_aurora", 3), 20241230, 0),
    ("pl_morning", "trk_granite", ts("2025-01-01 09:00:00")): ("art_basalt", surrogate_key("art_basalt", 1),
                                                               20250101, 1),
    ("pl_morning", "trk_dusk", ts("2025-03-01 10:00:00")): ("art_aurora", surrogate_key("art_aurora", 3), 20250301, 2),
    ("pl_morning", "trk_float", ts("2025-03-01 11:00:00")): ("art_delta", surrogate_key("art_delta", 2), 20250301, 3),
    ("pl_focus", "trk_dawn", ts("2025-01-15 07:30:00")): ("art_aurora", surrogate_key("art_aurora", 3), 20250115, 0),
    # no artist in the playlist item: the track's
    ("pl_focus", "trk_psalm", ts("2025-02-03 20:00:00")): ("art_cobalt", surrogate_key("art_cobalt", 1), 20250203, 1),
}
# top_artists: artist_id -> (additions, playlists, tracks, popularity, followers, first_popularity,
# popularity_change, followers_change, versions, primary_genre)
WANT_TOP_ARTISTS = {
    "art_aurora": (3, 2, 2, 50, 1000, 50, 0, 0, 3, "pop"),
    "art_basalt": (1, 1, 1, 40, 500, 40, 0, 0, 1, "indie rock"),
    "art_cobalt": (1, 1, 1, 70, 9000, 70, 0, 0, 1, None),
    "art_delta": (1, 1, 1, 28, 150, 20, 8, 50, 2, "pop"),
}
WANT_TOP_GENRES = {"pop": (4, 2), "indie rock": (1, 1), "unknown": (1, 1)}  # genre -> (additions, artists)
WANT_PLAYLISTS = {"pl_morning": ("Morning Mix", "user_ann", 4), "pl_focus": ("Deep Focus", "user_bob", 2)}
WANT_DAYS = (dt.date(2025, 3, 1) - dt.date(2024, 12, 30)).days + 1


def _meta(table: str, i: int, version) -> tuple:
    ingest_on = version[0]
    return (ingest_on, at(version), "spotify_api",
            f"landing_zone/spotify/{SOURCE_OF[table]}/ingest_on={ingest_on}/{i:03d}.json")


def write_warehouse(path: str) -> None:
    scratch.write_warehouse(path, SCHEMA, scratch.pipeline_tables(PIPELINE, ROWS), _meta)


def build(workdir: str, warehouse: str) -> None:
    scratch.build(PROJECT, SCHEMA, workdir, warehouse)


def check(warehouse: str) -> dict:
    con = connect(warehouse, read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        artists = {(r[0], r[1]): tuple(r[2:]) for r in q(
            f"SELECT artist_id, version_number, popularity, followers, valid_from, valid_to, is_current "
            f"FROM {SERVING}.dim_artists")}
        artist_keys = {(r[0], r[1]): r[2] for r in q(
            f"SELECT artist_id, version_number, artist_version_key FROM {SERVING}.dim_artists")}
        basalt = q(f"SELECT primary_genre, lake_versions FROM {SERVING}.dim_artists WHERE artist_id = 'art_basalt'")
        albums = {(r[0], r[1]): tuple(r[2:]) for r in q(
            f"SELECT album_id, version_number, popularity, valid_from, valid_to, is_current FROM {SERVING}.dim_albums")}
        fact = {(r[0], r[1], r[2]): tuple(r[3:]) for r in q(
            f"SELECT playlist_id, track_id, added_at, artist_id, artist_version_key, added_date_key, position "
            f"FROM {SERVING}.fact_playlist_additions")}
        fact_rows = q(f"SELECT count(*) FROM {SERVING}.fact_playlist_additions")[0][0]
        top_artists = {r[0]: tuple(r[1:]) for r in q(
            f"SELECT artist_id, additions, playlists, tracks, popularity, followers, first_popularity, "
            f"popularity_change, followers_change, versions, primary_genre FROM {BI}.top_artists")}
        top_genres = {r[0]: tuple(r[1:]) for r in q(f"SELECT genre, additions, artists FROM {BI}.top_genres")}
        playlists = {r[0]: tuple(r[1:]) for r in q(
            f"SELECT playlist_id, playlist_name, owner_id, tracks_count FROM {SERVING}.dim_playlists")}
        dawn = q(f"SELECT popularity, album_name, artist_name FROM {SERVING}.dim_tracks WHERE track_id = 'trk_dawn'")
        tracks = q(f"SELECT count(*) FROM {SERVING}.dim_tracks")[0][0]
        days = q(f"SELECT count(*), min(date_day), max(date_day) FROM {SERVING}.dim_dates")[0]
    finally:
        con.close()
    failures = []
    for what, got, want in (("dim_artists", artists, WANT_ARTIST_VERSIONS),
                            ("dim_albums", albums, WANT_ALBUM_VERSIONS),
                            ("fact_playlist_additions", fact, WANT_FACT),
                            ("top_artists", top_artists, WANT_TOP_ARTISTS),
                            ("top_genres", top_genres, WANT_TOP_GENRES),
                            ("dim_playlists", playlists, WANT_PLAYLISTS)):
        if got != want:
            diff = {k: (got.get(k), want.get(k)) for k in sorted(set(got) | set(want), key=str)
                    if got.get(k) != want.get(k)}
            failures.append(f"{what}: differs (key: (got, want)): {diff}")
    if fact_rows != len(WANT_FACT):
        failures.append(f"fact_playlist_additions: {fact_rows} rows, want {len(WANT_FACT)}")
    for key, got in artist_keys.items():
        if got != surrogate_key(*key):
            failures.append(f"dim_artists {key}: artist_version_key {got}, want md5 of '{key[0]}-{key[1]}'")
    if basalt != [WANT_BASALT]:
        failures.append(f"dim_artists art_basalt: (primary_genre, lake_versions) {basalt}, want one row "
                        f"{WANT_BASALT}")
    if dawn != [(65, "First Light", "Aurora Lane")]:
        failures.append(f"dim_tracks trk_dawn: {dawn}, want its latest version (65) with album and artist names")
    if tracks != 6:
        failures.append(f"dim_tracks: {tracks} rows, want 6")
    if days != (WANT_DAYS, dt.date(2024, 12, 30), dt.date(2025, 3, 1)):
        failures.append(f"dim_dates: {days}, want {WANT_DAYS} days 2024-12-30 .. 2025-03-01")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))
    print(f"  ok  dim_artists {len(artists)} versions of {len({k[0] for k in artists})} artists (50 -> 61 -> 50: "
          f"3 rows; genre-only change: 1 row), dim_albums {len(albums)} versions, {fact_rows} playlist additions, "
          f"top_artists and top_genres as expected, {days[0]} dates")
    return {"dim_artist_versions": len(artists), "dim_album_versions": len(albums),
            "fact_playlist_additions": fact_rows, "top_artists": len(top_artists), "top_genres": len(top_genres),
            "dim_dates": days[0]}


def main() -> None:
    scratch.main(__doc__.splitlines()[0], "spotify-scratch-", write_warehouse, build, check)


if __name__ == "__main__":
    main()
