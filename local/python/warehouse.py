"""Local warehouse: the DuckDB stand-in for Redshift and its Spectrum external schema.

The views themselves are made in one place, the dbt macro `deftunes_transform_views`
(dbt_modeling/macros/local_warehouse.sql): a schema named like the Redshift external schema
(`deftunes_transform`) holding one VIEW per Iceberg table of the catalog namespace, each
`iceberg_scan('<current metadata location>')` as the SQLite catalog records it right now. Every
`dbt build/run/test/snapshot --target local` runs it first (on-run-start), so dbt never reads a stale snapshot
and nothing has to be refreshed before a build.

`refresh` is for reading the warehouse without dbt (e.g. after a transform, before any build): it runs that
same macro through `dbt run-operation`.

Usage:
  warehouse.py refresh --catalog <catalog.db> --warehouse <warehouse.duckdb> [--namespace deftunes_transform]
                       [--schema deftunes_transform]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dbt_cli import PROJECT, dbt_command  # noqa: E402
from duckdb_env import connect, extension_dir  # noqa: E402


def _quote_lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def current_tables(catalog_db: str, namespace: str = "deftunes_transform") -> dict:
    """{table: local metadata path} at the catalog's current state (read-only)."""
    con = connect()
    try:
        rows = con.execute(
            f"SELECT table_name, metadata_location FROM sqlite_scan({_quote_lit(catalog_db)}, 'iceberg_tables') "
            "WHERE table_namespace = ? ORDER BY table_name",
            [namespace],
        ).fetchall()
    finally:
        con.close()
    return {name: loc.removeprefix("file://") for name, loc in rows if loc}


def dbt_env(catalog_db: str, warehouse_db: str, namespace: str = "deftunes_transform",
            schema: str = "deftunes_transform") -> dict:
    """The environment profiles.yml and the project read for the local target."""
    env = dict(os.environ)
    env.update(
        DEFTUNES_CATALOG=os.path.abspath(catalog_db),
        DEFTUNES_CATALOG_NAMESPACE=namespace,
        DBT_SOURCE_SCHEMA=schema,
        DEFTUNES_WAREHOUSE=os.path.abspath(warehouse_db),
        DEFTUNES_DUCKDB_EXT=extension_dir(),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


def refresh(
    catalog_db: str,
    warehouse_db: str,
    namespace: str = "deftunes_transform",
    schema: str = "deftunes_transform",
) -> dict:
    """Point one view per Iceberg table at its current metadata file (the dbt macro, run once).
    Returns {table: metadata path}."""
    if not os.path.exists(catalog_db):
        raise FileNotFoundError(f"catalog not found: {catalog_db}")
    warehouse_db = os.path.abspath(warehouse_db)
    os.makedirs(os.path.dirname(warehouse_db), exist_ok=True)
    work = os.path.join(os.path.dirname(warehouse_db), "dbt")
    cmd = dbt_command("run-operation", "local", work, "deftunes_transform_views")
    proc = subprocess.run(cmd, env=dbt_env(catalog_db, warehouse_db, namespace, schema), cwd=PROJECT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt run-operation deftunes_transform_views failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return current_tables(catalog_db, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("refresh", help="(re)create the views over the current Iceberg snapshots")
    r.add_argument("--catalog", required=True, help="SQLite Iceberg catalog (catalog.db)")
    r.add_argument("--warehouse", required=True, help="DuckDB database file")
    r.add_argument("--namespace", default="deftunes_transform")
    r.add_argument("--schema", default="deftunes_transform")
    args = parser.parse_args()
    tables = refresh(args.catalog, args.warehouse, args.namespace, args.schema)
    print(json.dumps({"warehouse": args.warehouse, "schema": args.schema, "views": tables}))


if __name__ == "__main__":
    main()
