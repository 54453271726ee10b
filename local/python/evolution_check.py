"""A pipeline spec changes under a table that already holds data, and everything downstream still reads it.

Usage: evolution_check.py --deftunes <deftunes binary> --run <sparkify run dir> --workdir <dir>

Takes the lake and catalog of a finished `deftunes run --pipeline sparkify --dir <run>` and:
1. copies pipelines/ (and the dbt macros the Sparkify project reads) into <workdir>, where the spec's
   `staging_songs` gains a column `genre`, loses `num_songs` and widens `year` from int to long (a year past
   int's range arrives), and the dbt staging model drops `num_songs`
   with it (a spec and its models change together);
2. lands one new song document carrying `genre` and transforms it through `deftunes transform` with the
   changed spec (DEFTUNES_PIPELINES points at the copy): the transform evolves the table in place;
3. checks with DuckDB (iceberg_scan of the current metadata): one table, every older row still there with a
   null `genre`, the new row with its genre, no `num_songs`, `year` a BIGINT whose older values read
   unchanged (their sum is the one before); the catalog holds the same table (one row);
4. runs the changed dbt project's build (run_local.sh --project) on the run's warehouse: it passes and
   stg_songs counts every song.
Exits non-zero naming the first failed check.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from duckdb_env import connect  # noqa: E402

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NEW_KEY = "landing_zone/song_data/Z/Z/Z/TRZZZEVOLVED00001.json"


def fail(msg: str) -> None:
    print(f"FAIL {msg}")
    sys.exit(1)


def ok(msg: str) -> None:
    print(f"  ok  {msg}")


# Past int's range: only a widened column holds it.
BIG_YEAR = 3_000_000_000


def edit(path: str, old: str, new: str) -> None:
    text = open(path).read()
    if old not in text:
        fail(f"{path}: {old!r} not found (the check needs updating)")
    open(path, "w").write(text.replace(old, new, 1))


def songs_table(catalog: str):
    con = connect()
    con.execute(f"ATTACH '{catalog}' AS cat (TYPE sqlite, READ_ONLY)")
    rows = con.execute(
        "SELECT metadata_location FROM cat.iceberg_tables WHERE table_namespace = 'sparkify' "
        "AND table_name = 'staging_songs'").fetchall()
    if len(rows) != 1:
        fail(f"expected one staging_songs table in the catalog, found {len(rows)}")
    return con, f"iceberg_scan('{rows[0][0].removeprefix('file://')}')"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deftunes", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    run = os.path.abspath(args.run)
    catalog = os.path.join(run, "catalog", "catalog.db")
    con, scan = songs_table(catalog)
    before, year_sum = con.execute(f"SELECT count(*), sum(year) FROM {scan}").fetchone()
    con.close()

    # 1. The changed spec and models, in a copy laid out as the repository is.
    work = os.path.abspath(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, "pipelines"), os.path.join(work, "pipelines"))
    shutil.copytree(os.path.join(REPO, "dbt_modeling", "macros"), os.path.join(work, "dbt_modeling", "macros"))
    spec = os.path.join(work, "pipelines", "sparkify", "pipeline.toml")
    edit(spec, '  { name = "num_songs", type = "int" },\n', "")
    edit(spec, '  { name = "year", type = "int" },\n', '  { name = "year", type = "long" },\n  { name = "genre", type = "string" },\n')
    stg = os.path.join(work, "pipelines", "sparkify", "dbt", "models", "staging", "stg_songs.sql")
    edit(stg, "    cast(num_songs as integer)                      as num_songs,\n", "")
    edit(stg, "    cast(nullif(year, 0) as integer)                as year,\n",
         "    cast(nullif(year, 0) as bigint)                 as year,\n")
    schema_yml = os.path.join(work, "pipelines", "sparkify", "dbt", "models", "staging", "schema.yml")
    if "num_songs" in open(schema_yml).read():
        fail(f"{schema_yml} documents num_songs: drop it there too")

    # 2. A new song document with the new field, through the transform with the changed spec.
    doc = {"num_songs": 1, "artist_id": "ARZZZEVOLVED00001", "artist_latitude": None, "artist_longitude": None,
           "artist_location": "", "artist_name": "Evolved", "song_id": "SOZZZEVOLVED00001", "title": "New Column",
           "duration": 200.5, "year": BIG_YEAR, "genre": "ambient"}
    path = os.path.join(run, "lake", NEW_KEY)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)
    env = dict(os.environ, DEFTUNES_PIPELINES=os.path.join(work, "pipelines"))
    out = subprocess.run([args.deftunes, "transform", "--dir", run, "--pipeline", "sparkify", NEW_KEY],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"deftunes transform with the changed spec failed:\n{out.stdout}{out.stderr}")
    ok("the changed spec's transform committed the new document")

    # 3. DuckDB reads the evolved table.
    con, scan = songs_table(catalog)
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    if "genre" not in cols or "num_songs" in cols:
        fail(f"evolved columns: {cols}")
    ok("staging_songs gained genre and lost num_songs, in place")
    total, genres = con.execute(f"SELECT count(*), count(genre) FROM {scan}").fetchone()
    if (total, genres) != (before + 1, 1):
        fail(f"expected {before + 1} rows with 1 genre, found {total} rows with {genres}")
    ok(f"{before} older rows read genre as null, the new row has it ({total} rows)")
    year_type = con.execute(f"SELECT typeof(year) FROM {scan} LIMIT 1").fetchone()[0]
    older_sum, big = con.execute(
        f"SELECT sum(year) FILTER (WHERE genre IS NULL), max(year) FROM {scan}").fetchone()
    if (year_type, older_sum, big) != ("BIGINT", year_sum, BIG_YEAR):
        fail(f"year after widening: type {year_type}, older sum {older_sum} (was {year_sum}), max {big}")
    ok(f"year widened to BIGINT in place: older values unchanged (sum {older_sum}), {BIG_YEAR} held")
    con.close()

    # 4. The changed dbt project builds on the evolved table.
    warehouse = os.path.join(run, "warehouse", "warehouse.duckdb")
    out = subprocess.run([os.path.join(REPO, "dbt_modeling", "run_local.sh"), "--project",
                          os.path.join(work, "pipelines", "sparkify", "dbt"), catalog, warehouse],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"dbt build on the evolved table failed:\n{out.stdout[-4000:]}{out.stderr[-2000:]}")
    con = connect(warehouse, read_only=True)
    n = con.execute("SELECT count(*) FROM sparkify_serving.stg_songs").fetchone()[0]
    con.close()
    if n != before + 1:
        fail(f"stg_songs has {n} songs, expected {before + 1}")
    ok(f"dbt build passed on the evolved table; stg_songs has {n} songs")
    print("evolution check ok")


if __name__ == "__main__":
    main()
