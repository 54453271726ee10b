"""End-to-end check of the dbt serving layer on the local warehouse (DuckDB over the Iceberg tables).

Proves, on a catalog made by `deftunes run`:
  1. a first `dbt build` over the windows up to --first-window-end (views filtered by warehouse.py
     --max-ingest-on) passes every test and the fact holds exactly the Iceberg sessions rows of those windows;
  2. after lifting the filter, an incremental `dbt build` adds exactly the rows of the later windows (the first
     windows' rows are kept, not rebuilt: a marker written into one of them survives);
  3. no session item is lost in a join: every fact row finds its user, song, artist and date dimension rows;
  4. running the setup (warehouse refresh) twice and `dbt build` again with no new data changes nothing;
  5. a changed user (place_name overridden in the source view) gets a second type-2 snapshot version.

Usage: serving_check.py --catalog <catalog.db> [--workdir DIR] [--first-window-end 2020-01-31]
Exits non-zero on the first failure; prints one JSON summary line on success.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from duckdb_env import connect, extension_dir  # noqa: E402
from warehouse import current_tables, refresh  # noqa: E402

PROJECT = os.path.normpath(os.path.join(HERE, "..", "..", "dbt_modeling"))
SERVING = "deftunes_serving"
BI = "deftunes_bi"
SOURCE = "deftunes_transform"


class CheckFailed(Exception):
    pass


def ensure(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)
    print(f"  ok  {message}", flush=True)


def dbt(workdir: str, warehouse: str, *args: str) -> float:
    env = dict(os.environ)
    env.update(
        DEFTUNES_WAREHOUSE=warehouse,
        DEFTUNES_DUCKDB_EXT=extension_dir(),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "dbt"), *args,
        "--target", "local", "--profiles-dir", PROJECT, "--project-dir", PROJECT,
        "--target-path", os.path.join(workdir, "target"), "--log-path", os.path.join(workdir, "logs"),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:])
        sys.stderr.write(proc.stderr[-3000:])
        raise CheckFailed(f"dbt {' '.join(args)} failed (exit {proc.returncode})")
    print(f"  ok  dbt {' '.join(args)} ({took:.1f}s)", flush=True)
    return took


def iceberg_sessions(catalog: str, max_ingest_on: str | None) -> int:
    """Rows of the Iceberg sessions table at its current snapshot, read directly (not through the views)."""
    loc = current_tables(catalog, SOURCE)["sessions"]
    con = connect()
    try:
        where = f" WHERE ingest_on <= DATE '{max_ingest_on}'" if max_ingest_on else ""
        return con.execute(f"SELECT count(*) FROM iceberg_scan('{loc}'){where}").fetchone()[0]
    finally:
        con.close()


def query(warehouse: str, sql: str, params=None):
    con = connect(warehouse)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def execute(warehouse: str, sql: str) -> None:
    con = connect(warehouse)
    try:
        con.execute(sql)
    finally:
        con.close()


def orphan_counts(warehouse: str) -> dict:
    fact = f"{SERVING}.fact_session"
    dims = {
        "user": ("dim_users", "user_key"),
        "song": ("dim_songs", "song_key"),
        "artist": ("dim_artists", "artist_key"),
        "date": ("dim_dates", "date_key"),
    }
    out = {}
    for name, (dim, key) in dims.items():
        out[name] = query(
            warehouse,
            f"SELECT count(*) FROM {fact} f LEFT JOIN {SERVING}.{dim} d ON d.{key} = f.{key} WHERE d.{key} IS NULL",
        )[0][0]
    out["all_dims_inner_join"] = query(
        warehouse,
        f"""SELECT count(*) FROM {fact} f
            JOIN {SERVING}.dim_users u ON u.user_key = f.user_key
            JOIN {SERVING}.dim_songs s ON s.song_key = f.song_key
            JOIN {SERVING}.dim_artists a ON a.artist_key = f.artist_key
            JOIN {SERVING}.dim_dates d ON d.date_key = f.date_key""",
    )[0][0]
    return out


def warehouse_state(warehouse: str) -> dict:
    """What a rerun of the setup and of `dbt build` must leave as it was: every view's definition and
    every table's row count."""
    views = dict(query(warehouse, "SELECT schema_name || '.' || view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"))
    tables = [r[0] for r in query(warehouse, "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1")]
    rows = {t: query(warehouse, f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    return {"views": views, "rows": rows}


def run(catalog: str, workdir: str, first_window_end: str) -> dict:
    warehouse = os.path.join(workdir, "warehouse.duckdb")
    summary = {}

    print(f"[1] first windows only (ingest_on <= {first_window_end})", flush=True)
    refresh(catalog, warehouse, max_ingest_on=first_window_end)
    summary["build_first_s"] = round(dbt(workdir, warehouse, "build"), 1)
    first_expected = iceberg_sessions(catalog, first_window_end)
    first_fact = query(warehouse, f"SELECT count(*) FROM {SERVING}.fact_session")[0][0]
    ensure(first_expected > 0, f"Iceberg sessions has rows up to {first_window_end} ({first_expected})")
    ensure(first_fact == first_expected, f"fact_session rows {first_fact} == Iceberg sessions rows {first_expected}")
    # Mark the rows of the first build: an incremental run must keep them, not rebuild them.
    execute(warehouse, f"CREATE OR REPLACE TABLE main.first_build_keys AS SELECT session_item_key FROM {SERVING}.fact_session")
    marked = query(warehouse, f"SELECT min(session_item_key) FROM {SERVING}.fact_session")[0][0]
    execute(warehouse, f"UPDATE {SERVING}.fact_session SET currency = 'KEPT' WHERE session_item_key = '{marked}'")

    print("[2] all windows, incremental build", flush=True)
    refresh(catalog, warehouse)
    summary["build_incremental_s"] = round(dbt(workdir, warehouse, "build"), 1)
    total_expected = iceberg_sessions(catalog, None)
    later_expected = total_expected - first_expected
    total_fact = query(warehouse, f"SELECT count(*) FROM {SERVING}.fact_session")[0][0]
    ensure(later_expected > 0, f"later windows hold {later_expected} session items")
    ensure(total_fact == total_expected, f"fact_session rows {total_fact} == Iceberg sessions rows {total_expected}")
    ensure(total_fact - first_fact == later_expected, f"incremental build added exactly {later_expected} rows")
    kept = query(
        warehouse,
        f"SELECT count(*) FROM main.first_build_keys k JOIN {SERVING}.fact_session f USING (session_item_key)",
    )[0][0]
    ensure(kept == first_fact, f"all {first_fact} rows of the first build are still there")
    late_dupes = query(
        warehouse,
        f"SELECT count(*) - count(DISTINCT session_item_key) FROM {SERVING}.fact_session",
    )[0][0]
    ensure(late_dupes == 0, "no duplicate session item after the incremental build")
    marker = query(warehouse, f"SELECT count(*) FROM {SERVING}.fact_session WHERE currency = 'KEPT'")[0][0]
    ensure(marker == 1, "the build was incremental: a marker written after the first build survived")
    execute(warehouse, f"UPDATE {SERVING}.fact_session SET currency = 'USD' WHERE currency = 'KEPT'")
    execute(warehouse, "DROP TABLE main.first_build_keys")
    windows = [str(r[0]) for r in query(warehouse, f"SELECT DISTINCT ingest_on FROM {SERVING}.fact_session ORDER BY 1")]
    summary["windows"] = windows

    print("[3] no session item lost in a join", flush=True)
    orphans = orphan_counts(warehouse)
    for name in ("user", "song", "artist", "date"):
        ensure(orphans[name] == 0, f"every fact row has its {name} dimension row")
    ensure(orphans["all_dims_inner_join"] == total_fact, "inner join of the fact with all dimensions keeps every row")
    bi = query(warehouse, f"SELECT round(sum(total_sales), 2), sum(items_sold) FROM {BI}.sales_per_artist_per_year")[0]
    fact_sum = query(warehouse, f"SELECT round(sum(price), 2) FROM {SERVING}.fact_session")[0][0]
    ensure(bi[1] == total_fact and bi[0] == fact_sum, f"sales_per_artist_per_year adds up to the fact ({bi[0]})")
    bi2 = query(warehouse, f"SELECT round(sum(total_sales), 2), sum(items_sold) FROM {BI}.sales_per_country_per_month")[0]
    ensure(bi2[1] == total_fact and bi2[0] == fact_sum, f"sales_per_country_per_month adds up to the fact ({bi2[0]})")

    print("[4] setup and build again with no new data change nothing", flush=True)
    before = warehouse_state(warehouse)
    refresh(catalog, warehouse)
    refresh(catalog, warehouse)
    summary["build_rerun_s"] = round(dbt(workdir, warehouse, "build"), 1)
    after = warehouse_state(warehouse)
    ensure(before["views"] == after["views"], f"the {len(after['views'])} view definitions are unchanged")
    ensure(before["rows"] == after["rows"], f"row counts of the {len(after['rows'])} tables are unchanged")

    print("[5] a changed user produces a new snapshot version", flush=True)
    user_id, place = query(warehouse, f"SELECT user_id, place_name FROM {SERVING}.snap_users ORDER BY user_id LIMIT 1")[0]
    versions_before = query(warehouse, f"SELECT count(*) FROM {SERVING}.snap_users WHERE user_id = ?", [user_id])[0][0]
    ensure(versions_before == 1, f"user {user_id} has one snapshot version ({place})")
    users_loc = current_tables(catalog, SOURCE)["users"]
    new_place = f"{place} (moved)"
    execute(
        warehouse,
        f"""CREATE OR REPLACE VIEW {SOURCE}.users AS
            SELECT * REPLACE (CASE WHEN user_id = '{user_id}' THEN '{new_place.replace("'", "''")}'
                                   ELSE place_name END AS place_name)
            FROM iceberg_scan('{users_loc}')""",
    )
    dbt(workdir, warehouse, "snapshot", "--select", "snap_users")
    rows = query(
        warehouse,
        f"SELECT place_name, dbt_valid_to IS NULL FROM {SERVING}.snap_users WHERE user_id = ? ORDER BY dbt_valid_from",
        [user_id],
    )
    ensure(len(rows) == 2, f"user {user_id} now has 2 snapshot versions")
    ensure(rows[0] == (place, False), f"old version ({place}) is closed")
    ensure(rows[1] == (new_place, True), f"new version ({new_place}) is current")
    others = query(
        warehouse,
        f"SELECT count(*) FROM (SELECT user_id FROM {SERVING}.snap_users GROUP BY user_id HAVING count(*) > 1)",
    )[0][0]
    ensure(others == 1, "no other user got a new version")
    refresh(catalog, warehouse)  # back to the real current snapshot

    summary.update(
        ok=True,
        fact_rows=total_fact,
        first_windows_rows=first_fact,
        later_windows_rows=later_expected,
        snapshot_user=user_id,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--workdir", default=None, help="kept if given; a temporary directory otherwise")
    parser.add_argument("--first-window-end", default="2020-01-31")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="deftunes-serving-")
    if args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
    try:
        summary = run(os.path.abspath(args.catalog), workdir, args.first_window_end)
    except CheckFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
