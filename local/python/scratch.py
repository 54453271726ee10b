"""What the pipelines' scratch checks (<pipeline>_scratch_check.py) share: a scratch DuckDB warehouse of
hand-written rows in the Iceberg tables' columns (pipeline.toml's [tables.*] columns in order, then the
transform's metadata columns), a `dbt build` of the pipeline's dbt project on it without any Iceberg catalog
(`--vars '{skip_transform_views: true}'`: the on-run-start hook leaves the scratch tables as they are), and the
command line (--workdir) around it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dbt_cli import dbt_command  # noqa: E402
from duckdb_env import connect, extension_dir  # noqa: E402

META = [("record_hash", "VARCHAR"), ("ingest_on", "DATE"), ("processing_timestamp", "TIMESTAMP"),
        ("source_from", "VARCHAR"), ("source_object", "VARCHAR")]
# pipeline.toml column types -> DuckDB (what iceberg_scan returns for the Iceberg types the transform writes).
TYPES = {"string": "VARCHAR", "int": "INTEGER", "long": "BIGINT", "date": "DATE", "timestamp": "TIMESTAMP",
         "double": "DOUBLE", "boolean": "BOOLEAN"}


def table_columns(pipeline: str) -> dict:
    """{table: [(column, DuckDB type)]} from `pipeline`/pipeline.toml, in its column order."""
    with open(os.path.join(pipeline, "pipeline.toml"), "rb") as f:
        tables = tomllib.load(f)["tables"]
    out = {}
    for name, table in tables.items():
        cols = []
        for c in table["columns"]:
            t = c["type"].lower()
            cols.append((c["name"], t.upper() if t.startswith("decimal") else TYPES[t]))
        out[name] = cols
    return out


def pipeline_tables(pipeline: str, rows: dict) -> dict:
    """{table: (columns, rows)} of every table of pipeline.toml, which must be exactly those of `rows`."""
    columns = table_columns(pipeline)
    if set(columns) != set(rows):
        raise SystemExit(f"FAILED: pipeline.toml tables {sorted(columns)}, scratch rows for {sorted(rows)}")
    return {table: (columns[table], table_rows) for table, table_rows in rows.items()}


def create_table(con, schema: str, table: str, columns: list, rows: list, meta) -> None:
    """`schema`.`table` with `columns` then META, holding `rows`: each row is its column values then a version,
    and meta(table, i, version) gives the row's (ingest_on, processing_timestamp, source_from, source_object)."""
    cols = columns + META
    con.execute(f"CREATE OR REPLACE TABLE {schema}.{table} ({', '.join(f'{n} {t}' for n, t in cols)})")
    full = []
    for i, r in enumerate(rows):
        *data, version = r
        if len(data) != len(columns):
            raise SystemExit(f"FAILED: scratch row {i} of {table} has {len(data)} values, pipeline.toml "
                             f"{len(columns)} columns")
        full.append((*data, f"hash{i}", *meta(table, i, version)))
    con.executemany(f"INSERT INTO {schema}.{table} VALUES ({', '.join('?' * len(cols))})", full)


def write_warehouse(path: str, schema: str, tables: dict, meta) -> None:
    """The scratch warehouse at `path`: schema `schema` with tables {table: (columns, rows)} (see create_table)."""
    con = connect(path)
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table, (columns, rows) in tables.items():
            create_table(con, schema, table, columns, rows, meta)
    finally:
        con.close()


def build(project: str, schema: str, workdir: str, warehouse: str,
          unset=("DEFTUNES_CATALOG", "DBT_SERVING_SCHEMA", "DBT_BI_SCHEMA")) -> None:
    """`dbt build --target local --vars '{skip_transform_views: true}'` of `project` on the scratch warehouse
    (sources in `schema`), without the environment variables `unset`; dbt's target/ and logs/ under workdir/dbt."""
    env = dict(os.environ, DEFTUNES_WAREHOUSE=warehouse, DEFTUNES_DUCKDB_EXT=extension_dir(),
               DEFTUNES_CATALOG_NAMESPACE=schema, DBT_SOURCE_SCHEMA=schema, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    for var in unset:
        env.pop(var, None)
    cmd = dbt_command("build", "local", os.path.join(workdir, "dbt"), "--vars", "{skip_transform_views: true}",
                      project=project)
    proc = subprocess.run(cmd, env=env, cwd=project, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-8000:])
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"FAILED: dbt build of {project} exited {proc.returncode}")
    done = [line for line in proc.stdout.splitlines() if "Done. PASS=" in line]
    print("  ok  dbt build --vars '{skip_transform_views: true}':", done[-1].split("Done. ")[-1] if done else "")


def main(description: str, prefix: str, write, build_, check) -> None:
    """The scratch checks' command line: [--workdir DIR] (kept; a temp dir named `prefix`... otherwise, removed),
    then write(warehouse), build_(workdir, warehouse), check(warehouse) -> counts; prints {"ok": true, **counts}."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", default=None, help="kept if given; a temporary directory otherwise")
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix=prefix)
    os.makedirs(workdir, exist_ok=True)
    warehouse = os.path.join(workdir, "warehouse.duckdb")
    try:
        if os.path.exists(warehouse):
            os.remove(warehouse)
        write(warehouse)
        build_(workdir, warehouse)
        counts = check(warehouse)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"ok": True, **counts}))
