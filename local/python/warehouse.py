"""Local warehouse: the DuckDB stand-in for Redshift and its Spectrum external schema.

`refresh` creates (or replaces), in a DuckDB database file, a schema named like the Redshift external
schema (`deftunes_transform`) holding one VIEW per Iceberg table of the catalog namespace. Each view is
`iceberg_scan('<current metadata location>')`, the location the SQLite catalog records right now, so dbt
reads the current snapshot and never a stale copy. Re-run it after every transform: it only rewrites views.

Usage:
  warehouse.py refresh --catalog <catalog.db> --warehouse <warehouse.duckdb>
                       [--namespace deftunes_transform] [--schema deftunes_transform]
                       [--max-ingest-on YYYY-MM-DD]

`--max-ingest-on` filters every view to `ingest_on <= date` (used by tests to simulate an earlier state of
the lake, then an incremental build once the filter is lifted).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from duckdb_env import connect  # noqa: E402


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def current_tables(catalog_db: str, namespace: str) -> dict:
    """{table: local metadata path} at the catalog's current state."""
    con = connect()
    try:
        con.execute(f"ATTACH {_quote_lit(catalog_db)} AS cat (TYPE sqlite, READ_ONLY)")
        rows = con.execute(
            "SELECT table_name, metadata_location FROM cat.iceberg_tables "
            "WHERE table_namespace = ? ORDER BY table_name",
            [namespace],
        ).fetchall()
    finally:
        con.close()
    return {name: loc.removeprefix("file://") for name, loc in rows if loc}


def refresh(
    catalog_db: str,
    warehouse_db: str,
    namespace: str = "deftunes_transform",
    schema: str = "deftunes_transform",
    max_ingest_on: str | None = None,
) -> dict:
    """Point one view per Iceberg table at its current metadata file. Returns {table: metadata path}."""
    if not os.path.exists(catalog_db):
        raise FileNotFoundError(f"catalog not found: {catalog_db}")
    tables = current_tables(catalog_db, namespace)
    if not tables:
        raise RuntimeError(f"no Iceberg tables in namespace {namespace!r} of {catalog_db}")
    os.makedirs(os.path.dirname(os.path.abspath(warehouse_db)), exist_ok=True)
    con = connect(warehouse_db)
    try:
        con.execute("BEGIN")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [schema]
            ).fetchall()
        }
        for name, location in tables.items():
            where = ""
            if max_ingest_on:
                where = f" WHERE ingest_on <= DATE {_quote_lit(max_ingest_on)}"
            con.execute(
                f"CREATE OR REPLACE VIEW {_quote_ident(schema)}.{_quote_ident(name)} AS "
                f"SELECT * FROM iceberg_scan({_quote_lit(location)}){where}"
            )
        for gone in sorted(existing - set(tables)):
            con.execute(f"DROP VIEW {_quote_ident(schema)}.{_quote_ident(gone)}")
        con.execute("COMMIT")
    finally:
        con.close()
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("refresh", help="(re)create the views over the current Iceberg snapshots")
    r.add_argument("--catalog", required=True, help="SQLite Iceberg catalog (catalog.db)")
    r.add_argument("--warehouse", required=True, help="DuckDB database file")
    r.add_argument("--namespace", default="deftunes_transform")
    r.add_argument("--schema", default="deftunes_transform")
    r.add_argument("--max-ingest-on", default=None, help="only rows with ingest_on <= this date")
    args = parser.parse_args()
    tables = refresh(args.catalog, args.warehouse, args.namespace, args.schema, args.max_ingest_on)
    print(json.dumps({"warehouse": args.warehouse, "schema": args.schema, "views": tables}))


if __name__ == "__main__":
    main()
