"""End-to-end check of the dbt serving layer on the local warehouse, driven by the real pipeline.

Everything the warehouse sees is committed to Iceberg by the `deftunes` CLI (extract + transform, or the
transform alone on landing objects written here), and every dbt build is `dbt_modeling/run_local.sh`, the
build `deftunes run` itself runs. `local/python/warehouse.py refresh` is never called before a build: the
build's on-run-start hook must find the new snapshots by itself.

  1. `deftunes run --window-to <first-window-to>`: the build passes every test, the fact holds exactly the
     Iceberg sessions rows, and the warehouse views point at the catalog's current metadata files;
  2. `deftunes run --keep --window-from <second-window-from>` (an incremental run into the same lake,
     catalog and warehouse): the fact grows by exactly the new windows' Iceberg rows and the earlier rows
     are kept, not rebuilt (a marker written into one of them survives);
  3. a changed user: a users landing object at a new ingest_on with one existing user whose location
     changed, `deftunes transform` on it, then a build: snap_users has a second version for that user (the
     old one closed), dim_users shows the new location, no other user changed;
  4. items arriving late: new session objects for the latest window and for an older, already loaded
     window, `deftunes transform`, a build: the fact gains exactly their items, with no duplicate;
  5. a late-arriving user: a session by a user who has not landed, `deftunes transform`, a build: the build
     passes, the fact holds the session's items, dim_users has an inferred member for the user (is_inferred,
     attributes null) that every item joins, the BI country view shows them as 'unknown'; then the user lands
     (a users object, transform, build): the same dim_users row is complete and no longer inferred, the fact
     rows are unchanged;
  6. a late-arriving song: a session whose two tracks (and artists) are not in the catalogue: the build
     passes, dim_songs has inferred members carrying the items' song_name, artist_id and artist_name,
     dim_artists inferred artists, every item joins; then the tracks land (a songs object, the catalogue
     giving both tracks the first item's artist): both dim_songs rows are complete, the artist is real, the
     second item's artist_key follows the catalogue, and no member is inferred any more;
  7. a session changed at the source, re-landed under a later ingest_on (one item's price changed), then
     changed again within that same ingest_on: after each transform and build, stg_sessions and the fact
     hold exactly one row per (session_id, item_index), showing the latest values (the count per ingest_on
     does not change in the second case: the fact must not rely on it);
  8. no session item is lost in a join: every fact row finds its user, song, artist and date rows, and the
     BI views add up to the fact;
  9. idempotent: `warehouse.py refresh` twice and a build with no new data change no view definition and
     no row count.

Usage: serving_check.py --deftunes <deftunes binary> [--workdir DIR] [--first-window-to 2020-02-29]
                        [--second-window-from 2020-03-01]
The run directory is <workdir>/run (wiped first). Exits non-zero on the first failure; prints one JSON
summary line on success.
"""
import argparse
import copy
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from duckdb_env import connect  # noqa: E402
from warehouse import current_tables, refresh  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
RUN_LOCAL = os.path.join(REPO, "dbt_modeling", "run_local.sh")
SERVING = "deftunes_serving"
BI = "deftunes_bi"
SOURCE = "deftunes_transform"
# A new location for the changed user (one of two, whichever differs from the user's country).
NEW_LOCATIONS = (
    ["45.76404", "4.83566", "Lyon", "FR", "Europe/Paris"],
    ["41.14961", "-8.61099", "Porto", "PT", "Europe/Lisbon"],
)


class CheckFailed(Exception):
    pass


def ensure(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)
    print(f"  ok  {message}", flush=True)


def _env() -> dict:
    env = dict(os.environ)
    env["DEFTUNES_PYTHON"] = sys.executable
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def _run(cmd: list, what: str) -> tuple:
    start = time.monotonic()
    proc = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-8000:])
        sys.stderr.write(proc.stderr[-4000:])
        raise CheckFailed(f"{what} failed (exit {proc.returncode})")
    print(f"  ok  {what} ({took:.1f}s)", flush=True)
    return proc.stdout, took


class Run:
    """One run directory of `deftunes run` and its warehouse."""

    def __init__(self, deftunes: str, run_dir: str):
        self.deftunes = deftunes
        self.dir = run_dir
        self.lake = os.path.join(run_dir, "lake")
        self.catalog = os.path.join(run_dir, "catalog", "catalog.db")
        self.warehouse = os.path.join(run_dir, "warehouse", "warehouse.duckdb")

    def pipeline(self, *args: str) -> float:
        return _run([self.deftunes, "run", "--dir", self.dir, *args], f"deftunes run {' '.join(args)}")[1]

    def transform(self, keys: list) -> list:
        out, _ = _run([self.deftunes, "transform", "--dir", self.dir, *keys], f"deftunes transform ({len(keys)} keys)")
        outcomes = _outcomes(out)
        by_key = {o["key"]: o for o in outcomes}
        for key in keys:
            o = by_key.get(key)
            ensure(o is not None and o.get("status") == "committed" and o.get("records_quarantined") == 0,
                   f"transform committed {os.path.basename(key)} with nothing quarantined")
        return [by_key[k] for k in keys]

    def build(self) -> float:
        """`dbt build --target local`, as `deftunes run` runs it (and no warehouse refresh before it)."""
        return _run([RUN_LOCAL, self.catalog, self.warehouse], "dbt build (run_local.sh)")[1]

    def write_landing(self, key: str, records: list) -> str:
        path = os.path.join(self.lake, key)
        if os.path.exists(path):
            raise CheckFailed(f"landing object already exists: {key}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            for r in records:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        return key

    def landing_records(self, source: str, ingest_on: str | None = None) -> list:
        """[(ingest_on, record)] of the landing objects of `source` (e.g. 'api/users'), oldest first."""
        part = f"ingest_on={ingest_on}" if ingest_on else "ingest_on=*"
        out = []
        for path in sorted(glob.glob(os.path.join(self.lake, "landing_zone", source, part, "*.jsonl"))):
            day = re.search(r"ingest_on=([0-9-]+)", path).group(1)
            with open(path) as f:
                out.extend((day, json.loads(line)) for line in f if line.strip())
        return out

    # --- reading the warehouse and the Iceberg tables ---

    def query(self, sql: str, params=None):
        con = connect(self.warehouse)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def scalar(self, sql: str, params=None):
        return self.query(sql, params)[0][0]

    def execute(self, sql: str, params=None) -> None:
        con = connect(self.warehouse)
        try:
            con.execute(sql, params or [])
        finally:
            con.close()

    def iceberg(self, table: str, sql: str = "SELECT count(*) FROM t"):
        """A query on an Iceberg table at its current snapshot, read directly (not through the views)."""
        loc = current_tables(self.catalog, SOURCE)[table]
        con = connect()
        try:
            con.execute(f"CREATE VIEW t AS SELECT * FROM iceberg_scan('{loc}')")
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def fact_rows(self) -> int:
        return self.scalar(f"SELECT count(*) FROM {SERVING}.fact_session")

    def view_locations(self) -> dict:
        rows = self.query(
            "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [SOURCE]
        )
        out = {}
        for name, sql in rows:
            m = re.search(r"iceberg_scan\('((?:[^']|'')*)'\)", sql)
            out[name] = m.group(1).replace("''", "'") if m else sql
        return out

    def ensure_views_current(self, when: str) -> None:
        views, tables = self.view_locations(), current_tables(self.catalog, SOURCE)
        ensure(views == tables, f"{when}: the {len(views)} warehouse views read the catalog's current metadata")


def _outcomes(stdout: str) -> list:
    """The per-key outcomes printed by `deftunes transform`:
    {"outcomes": [{"key", "status": "ok", "outcome": {key, status, records_*...}} | {... error}], "failed": n}."""
    start = stdout.find("{")
    try:
        doc = json.loads(stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("outcomes"), list):
        raise CheckFailed(f"deftunes transform printed no outcomes JSON:\n{stdout[-2000:]}")
    if doc.get("failed", 0) != 0:
        raise CheckFailed(f"deftunes transform reports {doc['failed']} failed key(s):\n{stdout[-2000:]}")
    return [entry.get("outcome") or entry for entry in doc["outcomes"]]


def orphan_counts(run: Run) -> dict:
    fact = f"{SERVING}.fact_session"
    dims = {
        "user": ("dim_users", "user_key"),
        "song": ("dim_songs", "song_key"),
        "artist": ("dim_artists", "artist_key"),
        "date": ("dim_dates", "date_key"),
    }
    out = {}
    for name, (dim, key) in dims.items():
        out[name] = run.scalar(
            f"SELECT count(*) FROM {fact} f LEFT JOIN {SERVING}.{dim} d ON d.{key} = f.{key} WHERE d.{key} IS NULL"
        )
    out["all_dims_inner_join"] = run.scalar(
        f"""SELECT count(*) FROM {fact} f
            JOIN {SERVING}.dim_users u ON u.user_key = f.user_key
            JOIN {SERVING}.dim_songs s ON s.song_key = f.song_key
            JOIN {SERVING}.dim_artists a ON a.artist_key = f.artist_key
            JOIN {SERVING}.dim_dates d ON d.date_key = f.date_key"""
    )
    return out


def surrogate_key(value: str) -> str:
    """The dbt surrogate_key of one non-null column: md5 of its text, hex."""
    return hashlib.md5(value.encode()).hexdigest()


def next_month(day: str) -> str:
    d = datetime.date.fromisoformat(day)
    return (d.replace(day=28) + datetime.timedelta(days=4)).replace(day=1).isoformat()


def inferred_total(run: Run) -> dict:
    return {dim: run.scalar(f"SELECT count(*) FROM {SERVING}.{dim} WHERE is_inferred")
            for dim in ("dim_users", "dim_songs", "dim_artists")}


def ensure_joins(run: Run, when: str) -> int:
    """Every fact row finds its user, song, artist and date rows, and both BI views add up to the fact.
    Returns the number of fact rows."""
    total_fact = run.fact_rows()
    orphans = orphan_counts(run)
    for name in ("user", "song", "artist", "date"):
        ensure(orphans[name] == 0, f"{when}: every fact row has its {name} dimension row")
    ensure(orphans["all_dims_inner_join"] == total_fact,
           f"{when}: inner join of the fact with all dimensions keeps every row")
    fact_sum = run.scalar(f"SELECT round(sum(price), 2) FROM {SERVING}.fact_session")
    for view in ("sales_per_artist_per_year", "sales_per_country_per_month"):
        sales, items = run.query(f"SELECT round(sum(total_sales), 2), sum(items_sold) FROM {BI}.{view}")[0]
        ensure(items == total_fact and sales == fact_sum, f"{when}: {view} adds up to the fact ({sales})")
    return total_fact


def ensure_one_row_per_item(run: Run, when: str) -> None:
    for rel in ("stg_sessions", "fact_session"):
        dups = run.scalar(f"SELECT count(*) FROM (SELECT session_id, item_index FROM {SERVING}.{rel} "
                          "GROUP BY session_id, item_index HAVING count(*) > 1) AS d")
        ensure(dups == 0, f"{when}: {rel} holds one row per (session_id, item_index)")
    keys = run.iceberg("sessions", "SELECT count(*) FROM (SELECT DISTINCT session_id, item_index FROM t) AS k")[0][0]
    ensure(run.fact_rows() == keys, f"{when}: fact_session rows == distinct Iceberg session items ({keys})")


def warehouse_state(run: Run) -> dict:
    """What a rerun of the setup and of `dbt build` must leave as it was: every view's definition and
    every table's row count."""
    views = dict(run.query(
        "SELECT schema_name || '.' || view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"))
    tables = [r[0] for r in run.query("SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1")]
    rows = {t: run.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    return {"views": views, "rows": rows}


def late_user(run: Run, window: str, day: str) -> dict:
    """[5] A session by a user who has not landed: the fact row exists, the member is inferred, dbt passes;
    after the user lands, the dimension row is complete."""
    users = run.landing_records("api/users")
    template = run.landing_records("api/sessions", window)[0][1]  # of an extracted object (sorted first)
    user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "deftunes/serving-check/late-user"))
    ensure(all(r["user_id"] != user_id for _, r in users), f"user {user_id} has not landed")
    session = dict(template, user_id=user_id,
                   session_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"late-user/{template['session_id']}")))
    items = len(session["session_items"])
    key = run.write_landing(
        f"landing_zone/api/sessions/ingest_on={window}/sessions_late_user_{window}.part-00000.jsonl", [session])
    run.transform([key])
    took = run.build()  # run_local.sh exits non-zero on any failed test: this build passed
    user_key = surrogate_key(user_id)
    fact = run.query(f"SELECT user_key FROM {SERVING}.fact_session WHERE session_id = ?", [session["session_id"]])
    ensure(len(fact) == items and all(r[0] == user_key for r in fact),
           f"the fact holds the session's {items} item(s), keyed to the user")
    ensure(run.query(
        f"SELECT user_key, is_inferred, first_name, last_name, place_name, country_code, user_since "
        f"FROM {SERVING}.dim_users WHERE user_id = ?", [user_id]) == [(user_key, True, None, None, None, None, None)],
        "dim_users has an inferred member for the user (is_inferred, attributes null)")
    ensure(inferred_total(run) == {"dim_users": 1, "dim_songs": 0, "dim_artists": 0},
           "exactly one inferred member, that user")
    unknown = run.scalar(f"SELECT sum(items_sold) FROM {BI}.sales_per_country_per_month WHERE country_code = 'unknown'")
    ensure(unknown == items, f"sales_per_country_per_month shows the {items} item(s) under country 'unknown'")
    ensure_joins(run, "with an inferred user")

    print("    ... the user lands", flush=True)
    location = NEW_LOCATIONS[0]
    record = dict(users[0][1], user_id=user_id, user_name="Late", user_lastname="Arrival",
                  user_location=location)
    key = run.write_landing(f"landing_zone/api/users/ingest_on={day}/users_late_{day}.part-00000.jsonl", [record])
    run.transform([key])
    run.build()
    ensure(run.query(
        f"SELECT user_key, is_inferred, first_name, last_name, place_name, country_code, user_since IS NOT NULL "
        f"FROM {SERVING}.dim_users WHERE user_id = ?", [user_id])
        == [(user_key, False, "Late", "Arrival", location[2], location[3], True)],
        f"the dim_users row is complete and not inferred ({location[2]}, {location[3]})")
    ensure(inferred_total(run) == {"dim_users": 0, "dim_songs": 0, "dim_artists": 0}, "no inferred member left")
    ensure(run.query(f"SELECT user_key FROM {SERVING}.fact_session WHERE session_id = ?", [session["session_id"]])
           == fact, "the session's fact rows are unchanged (same user_key)")
    ensure(run.scalar(f"SELECT count(*) FROM {SERVING}.snap_users WHERE user_id = ? AND dbt_valid_to IS NULL",
                      [user_id]) == 1, "snap_users has the user, one current version")
    ensure(run.scalar(f"SELECT count(*) FROM {BI}.sales_per_country_per_month WHERE country_code = 'unknown'") == 0,
           "no 'unknown' country left in the BI view")
    ensure_joins(run, "after the user landed")
    return {"user_id": user_id, "items": items, "build_s": round(took, 1)}


def late_song(run: Run, window: str, day: str) -> dict:
    """[6] A session whose tracks are not in the catalogue yet: inferred songs (and artists), completed when the
    tracks land. The catalogue then gives the second track the first item's artist: its fact row follows."""
    template = run.landing_records("api/sessions", window)[0][1]
    songs = run.landing_records("rds/songs")
    tag = uuid.uuid5(uuid.NAMESPACE_URL, "deftunes/serving-check/late-song").hex.upper()
    tracks = [f"TRLATE{tag[:11]}{i}" for i in (1, 2)]  # 18 characters, like the catalogue's ids
    artists = [f"ARLATE{tag[11:22]}{i}" for i in (1, 2)]
    known_tracks = {r["track_id"] for _, r in songs}
    known_artists = {r["artist_id"] for _, r in songs}
    ensure(not set(tracks) & known_tracks and not set(artists) & known_artists,
           "the session's tracks and artists are not in the catalogue")
    base = template["session_items"][0]
    items = [dict(base, song_id=tracks[i], song_name=f"Late Song {i + 1}", artist_id=artists[i],
                  artist_name=f"Late Artist {i + 1}") for i in range(2)]
    session = dict(template, session_items=items,
                   session_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"late-song/{template['session_id']}")))
    key = run.write_landing(
        f"landing_zone/api/sessions/ingest_on={window}/sessions_late_song_{window}.part-00000.jsonl", [session])
    run.transform([key])
    took = run.build()  # passed, with the tracks missing
    fact_sql = (f"SELECT item_index, song_key, artist_key FROM {SERVING}.fact_session WHERE session_id = ? "
                "ORDER BY item_index")
    ensure(run.query(fact_sql, [session["session_id"]])
           == [(i, surrogate_key(tracks[i]), surrogate_key(artists[i])) for i in range(2)],
           "the fact holds both items, keyed to their tracks and to the items' artists")
    song_sql = (f"SELECT track_id, is_inferred, title, artist_id, artist_name, artist_key, song_id, release, "
                f"duration_seconds FROM {SERVING}.dim_songs WHERE track_id IN (?, ?) ORDER BY track_id")
    ensure(run.query(song_sql, tracks) == [
        (tracks[i], True, f"Late Song {i + 1}", artists[i], f"Late Artist {i + 1}", surrogate_key(artists[i]),
         None, None, None) for i in range(2)],
        "dim_songs has inferred members with the items' song_name, artist_id and artist_name")
    artist_sql = (f"SELECT artist_id, is_inferred, artist_name, artist_mbid FROM {SERVING}.dim_artists "
                  "WHERE artist_id IN (?, ?) ORDER BY artist_id")
    ensure(run.query(artist_sql, artists) == [(artists[i], True, f"Late Artist {i + 1}", None) for i in range(2)],
           "dim_artists has inferred members for the artists known only from the items")
    ensure(inferred_total(run) == {"dim_users": 0, "dim_songs": 2, "dim_artists": 2},
           "exactly those inferred members")
    ensure_joins(run, "with inferred songs")

    print("    ... the tracks land (both by the first item's artist)", flush=True)
    template_song = songs[0][1]
    records = [dict(template_song, track_id=tracks[i], song_id=f"SOLATE{tag[:11]}{i + 1}",
                    title=f"Late Song {i + 1} (catalogue)", artist_id=artists[0],
                    artist_name="Late Artist 1", artist_mbid=str(uuid.uuid5(uuid.NAMESPACE_URL, artists[0])))
               for i in range(2)]
    key = run.write_landing(f"landing_zone/rds/songs/ingest_on={day}/songs_late.part-00000.jsonl", records)
    run.transform([key])
    run.build()
    complete_sql = (f"SELECT track_id, is_inferred, title, artist_id, artist_name, artist_key, song_id, release, "
                    f"duration_seconds IS NULL FROM {SERVING}.dim_songs WHERE track_id IN (?, ?) ORDER BY track_id")
    ensure(run.query(complete_sql, tracks) == [
        (tracks[i], False, f"Late Song {i + 1} (catalogue)", artists[0], "Late Artist 1",
         surrogate_key(artists[0]), records[i]["song_id"], template_song.get("release"),
         template_song.get("duration") is None) for i in range(2)],
        "both dim_songs rows are complete (the catalogue's title, artist, song_id, release, duration), not inferred")
    ensure(run.query(artist_sql, artists) == [(artists[0], False, "Late Artist 1", records[0]["artist_mbid"])],
           "dim_artists: the first artist is real now, the second (no longer referenced) is gone")
    ensure(run.query(fact_sql, [session["session_id"]])
           == [(i, surrogate_key(tracks[i]), surrogate_key(artists[0])) for i in range(2)],
           "the fact's artist_key follows the catalogue (the second item's row was reloaded)")
    ensure(inferred_total(run) == {"dim_users": 0, "dim_songs": 0, "dim_artists": 0}, "no inferred member left")
    ensure(run.scalar(f"SELECT count(*) FROM {SERVING}.snap_songs WHERE track_id IN (?, ?) AND dbt_valid_to IS NULL",
                      tracks) == 2, "snap_songs has both tracks, one current version each")
    ensure_joins(run, "after the tracks landed")
    return {"tracks": tracks, "build_s": round(took, 1)}


def changed_session(run: Run, window: str, day: str) -> dict:
    """[7] One session changed at the source, re-landed under a later ingest_on, then changed again in that same
    ingest_on: one row per (session_id, item_index) in stg_sessions and the fact, with the latest values."""
    _, original = run.landing_records("api/sessions", window)[1]
    session_id = original["session_id"]
    n_items = len(original["session_items"])
    before = run.query(f"SELECT item_index, price, ingest_on FROM {SERVING}.fact_session WHERE session_id = ? "
                       "ORDER BY item_index", [session_id])
    ensure(len(before) == n_items and all(str(r[2]) == window for r in before),
           f"session {session_id} has its {n_items} item(s) in the fact, ingest_on {window}")
    iceberg_before = run.iceberg("sessions")[0][0]
    fact_before = run.fact_rows()
    sql = (f"SELECT item_index, round(price, 2), currency, ingest_on FROM {SERVING}.{{rel}} WHERE session_id = ? "
           "ORDER BY item_index")
    prices = []
    for step, name in ((1, "changed"), (2, "changed_again")):
        changed = copy.deepcopy(original)
        old_price = float(before[0][1])
        price = round((old_price + 0.37 * step) % 2.0, 2)  # within the 0..2 USD of the rules, differs each step
        changed["session_items"][0]["price"] = price
        prices.append(price)
        key = run.write_landing(
            f"landing_zone/api/sessions/ingest_on={day}/sessions_{name}_{day}.part-00000.jsonl", [changed])
        run.transform([key])
        run.build()
        what = "re-landed under a later ingest_on" if step == 1 else "changed again within that ingest_on"
        ensure_one_row_per_item(run, what)
        expected = [(0, price, original["session_items"][0]["currency"], day)]
        for i, item in enumerate(original["session_items"][1:], start=1):
            expected.append((i, round(float(item["price"]), 2), item["currency"], None))
        for rel in ("stg_sessions", "fact_session"):
            rows = run.query(sql.format(rel=rel), [session_id])
            got = [(r[0], float(r[1]), r[2], str(r[3]) if r[0] == 0 else None) for r in rows]
            ensure(got == [(e[0], e[1], e[2], e[3]) for e in expected],
                   f"{what}: {rel} shows the latest values (item 0 at {price} USD, ingest_on {day})")
        ensure(run.fact_rows() == fact_before, f"{what}: the fact has as many rows as before ({fact_before})")
    versions = run.iceberg(
        "sessions", f"SELECT count(*) FROM t WHERE session_id = '{session_id}' AND item_index = 0")[0][0]
    ensure(versions >= 3, f"Iceberg sessions holds {versions} versions of item 0 (append-only)")
    has_hash = run.iceberg("sessions", "SELECT count(*) FROM information_schema.columns "
                                       "WHERE table_name = 't' AND column_name = 'record_hash'")[0][0] > 0
    if has_hash:  # the record identity column of the versioned transform zone (when the tables have it)
        hashes = run.iceberg("sessions", f"SELECT count(DISTINCT record_hash) FROM t "
                                         f"WHERE session_id = '{session_id}' AND item_index = 0")[0][0]
        ensure(hashes == versions, f"each version of item 0 has its own record_hash ({hashes})")
    # Informative: the versioned transform appends only new content (the unchanged items are not appended again).
    appended = run.iceberg("sessions")[0][0] - iceberg_before
    print(f"  ..  the two changed objects appended {appended} Iceberg row(s) ({n_items} item(s) each)", flush=True)
    return {"session_id": session_id, "items": n_items, "prices": prices, "iceberg_rows_appended": appended}


def check(run: Run, first_window_to: str, second_window_from: str) -> dict:
    summary = {}

    print(f"[1] deftunes run --window-to {first_window_to}", flush=True)
    summary["run_first_s"] = round(run.pipeline("--window-to", first_window_to), 1)
    first_expected = run.iceberg("sessions")[0][0]
    first_fact = run.fact_rows()
    ensure(first_expected > 0, f"Iceberg sessions has {first_expected} rows")
    ensure(first_fact == first_expected, f"fact_session rows {first_fact} == Iceberg sessions rows {first_expected}")
    first_windows = [str(r[0]) for r in run.query(
        f"SELECT DISTINCT ingest_on FROM {SERVING}.fact_session ORDER BY 1")]
    ensure(len(first_windows) >= 1 and all(w < second_window_from for w in first_windows),
           f"the fact holds the first windows only ({', '.join(first_windows)})")
    run.ensure_views_current("after the first run")
    # Mark the rows of the first build: the incremental run must keep them, not rebuild them.
    run.execute(f"CREATE OR REPLACE TABLE main.first_build_keys AS SELECT session_item_key FROM {SERVING}.fact_session")
    marked, marked_currency = run.query(
        f"SELECT session_item_key, currency FROM {SERVING}.fact_session WHERE ingest_on = ? "
        "ORDER BY session_item_key LIMIT 1", [first_windows[0]])[0]
    run.execute(f"UPDATE {SERVING}.fact_session SET currency = 'KEPT' WHERE session_item_key = ?", [marked])

    print(f"[2] deftunes run --keep --window-from {second_window_from} (incremental)", flush=True)
    summary["run_incremental_s"] = round(run.pipeline("--keep", "--window-from", second_window_from), 1)
    run.ensure_views_current("after the incremental run")
    total_expected = run.iceberg("sessions")[0][0]
    new_expected = run.iceberg("sessions", f"SELECT count(*) FROM t WHERE ingest_on >= DATE '{second_window_from}'")[0][0]
    total_fact = run.fact_rows()
    ensure(new_expected > 0, f"the new windows hold {new_expected} session items in Iceberg")
    ensure(total_expected == first_expected + new_expected, "the first windows' Iceberg rows are unchanged")
    ensure(total_fact == total_expected, f"fact_session rows {total_fact} == Iceberg sessions rows {total_expected}")
    ensure(total_fact - first_fact == new_expected, f"the incremental run added exactly {new_expected} rows")
    kept = run.scalar(
        f"SELECT count(*) FROM main.first_build_keys k JOIN {SERVING}.fact_session f USING (session_item_key)")
    ensure(kept == first_fact, f"all {first_fact} rows of the first build are still there")
    ensure(run.scalar(f"SELECT count(*) - count(DISTINCT session_item_key) FROM {SERVING}.fact_session") == 0,
           "no duplicate session item after the incremental run")
    ensure(run.scalar(f"SELECT count(*) FROM {SERVING}.fact_session WHERE currency = 'KEPT'") == 1,
           "the build was incremental: a marker written after the first build survived")
    run.execute(f"UPDATE {SERVING}.fact_session SET currency = ? WHERE session_item_key = ?", [marked_currency, marked])
    run.execute("DROP TABLE main.first_build_keys")
    windows = [str(r[0]) for r in run.query(f"SELECT DISTINCT ingest_on FROM {SERVING}.fact_session ORDER BY 1")]
    summary["windows"] = windows

    print("[3] a changed user produces a new snapshot version", flush=True)
    users = run.landing_records("api/users")
    user_id = sorted(r["user_id"] for _, r in users)[0]
    latest_day, original = [(d, r) for d, r in users if r["user_id"] == user_id][-1]
    old_place, old_country = original["user_location"][2], original["user_location"][3]
    ensure(run.query(f"SELECT place_name, country_code FROM {SERVING}.dim_users WHERE user_id = ?", [user_id])
           == [(old_place, old_country)], f"user {user_id} is in {old_place}, {old_country} (landed {latest_day})")
    ensure(run.scalar(f"SELECT count(*) FROM {SERVING}.snap_users WHERE user_id = ?", [user_id]) == 1,
           f"user {user_id} has one snapshot version")
    new_location = next(loc for loc in NEW_LOCATIONS if loc[3] != old_country)
    changed = dict(original, user_location=new_location)
    users_before = current_tables(run.catalog, SOURCE)["users"]
    day = next_month(max(windows))
    key = run.write_landing(
        f"landing_zone/api/users/ingest_on={day}/users_{day}_{day}.part-00000.jsonl", [changed])
    run.transform([key])
    ensure(current_tables(run.catalog, SOURCE)["users"] != users_before, "the transform committed a new users snapshot")
    summary["build_changed_user_s"] = round(run.build(), 1)
    run.ensure_views_current("after the transform (no warehouse refresh)")
    rows = run.query(
        f"SELECT place_name, country_code, dbt_valid_to IS NULL FROM {SERVING}.snap_users "
        "WHERE user_id = ? ORDER BY dbt_valid_from", [user_id])
    ensure(len(rows) == 2, f"user {user_id} now has 2 snapshot versions")
    ensure(rows[0] == (old_place, old_country, False), f"the old version ({old_place}, {old_country}) is closed")
    ensure(rows[1] == (new_location[2], new_location[3], True),
           f"the new version ({new_location[2]}, {new_location[3]}) is current")
    ensure(run.query(f"SELECT place_name, country_code FROM {SERVING}.dim_users WHERE user_id = ?", [user_id])
           == [(new_location[2], new_location[3])], "dim_users shows the new location")
    ensure(run.scalar(
        f"SELECT count(*) FROM (SELECT user_id FROM {SERVING}.snap_users GROUP BY user_id HAVING count(*) > 1)") == 1,
        "no other user got a new version")
    ensure(run.fact_rows() == total_expected, "the fact is unchanged by a users-only change")

    print("[4] items arriving late, for the latest window and for an older one, are loaded once", flush=True)
    late_keys, late_items = [], 0
    for window in sorted({windows[0], windows[-1]}):
        original = run.landing_records("api/sessions", window)[0][1]
        session = dict(original, session_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"late/{original['session_id']}")))
        late_items += len(session["session_items"])
        late_keys.append(run.write_landing(
            f"landing_zone/api/sessions/ingest_on={window}/sessions_late_{window}.part-00000.jsonl", [session]))
    run.transform(late_keys)
    summary["build_late_s"] = round(run.build(), 1)
    run.ensure_views_current("after the late transform (no warehouse refresh)")
    total_expected = run.iceberg("sessions")[0][0]
    total_fact_late = run.fact_rows()
    ensure(total_fact_late == total_expected, f"fact_session rows {total_fact_late} == Iceberg sessions rows {total_expected}")
    ensure(total_fact_late - total_fact == late_items, f"the late objects added exactly their {late_items} items")
    ensure(run.scalar(f"SELECT count(*) - count(DISTINCT session_item_key) FROM {SERVING}.fact_session") == 0,
           "no duplicate session item after reloading the late windows")
    total_fact = total_fact_late

    ensure(inferred_total(run) == {"dim_users": 0, "dim_songs": 0, "dim_artists": 0},
           "no inferred dimension member while every user and track has landed")

    print("[5] a session by a user who has not landed: inferred member, completed when the user lands", flush=True)
    summary["late_user"] = late_user(run, windows[-1], day)

    print("[6] a session whose tracks have not landed: inferred songs and artists, completed when they land",
          flush=True)
    summary["late_song"] = late_song(run, windows[-1], day)

    print("[7] a session changed at the source, re-landed under a later ingest_on, then again in that window",
          flush=True)
    summary["changed_session"] = changed_session(run, windows[0], day)

    print("[8] no session item lost in a join", flush=True)
    total_fact = ensure_joins(run, "final")

    print("[9] setup and build again with no new data change nothing", flush=True)
    before = warehouse_state(run)
    refresh(run.catalog, run.warehouse)
    refresh(run.catalog, run.warehouse)
    ensure(warehouse_state(run) == before, "warehouse.py refresh twice changes nothing")
    summary["build_rerun_s"] = round(run.build(), 1)
    after = warehouse_state(run)
    ensure(before["views"] == after["views"], f"the {len(after['views'])} view definitions are unchanged")
    ensure(before["rows"] == after["rows"], f"row counts of the {len(after['rows'])} tables are unchanged")

    summary.update(
        ok=True,
        fact_rows=total_fact,
        first_windows_rows=first_fact,
        new_windows_rows=new_expected,
        late_items=late_items,
        snapshot_user=user_id,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deftunes", required=True, help="the deftunes binary ($CARGO_TARGET_DIR/debug/deftunes)")
    parser.add_argument("--workdir", default=None, help="kept if given (wiped first); a temporary directory otherwise")
    parser.add_argument("--first-window-to", default="2020-02-29")
    parser.add_argument("--second-window-from", default="2020-03-01")
    args = parser.parse_args()
    deftunes = os.path.abspath(args.deftunes)
    if not os.access(deftunes, os.X_OK):
        print(f"FAILED: no deftunes binary at {deftunes} (make build)", file=sys.stderr)
        sys.exit(2)
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="deftunes-serving-")
    if args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
    try:
        summary = check(Run(deftunes, os.path.join(workdir, "run")), args.first_window_to, args.second_window_from)
    except CheckFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
