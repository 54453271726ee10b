"""Row counts of a local warehouse's schemas, and named scalar queries: the run's row-count report
(the original Sparkify ETL's `etl_<timestamp>.results`).

Usage: row_counts.py <warehouse.duckdb> --schema S [--schema S2 ...] [--query NAME=SQL ...]
Prints one JSON object: {"row_counts": {"<schema>.<table>": rows, ...}, "queries": {NAME: value, ...}}.
Tables and views of each schema are counted; a schema that does not exist is an error.
"""
import argparse
import json
import sys

from duckdb_env import connect


def row_counts(con, schemas) -> dict:
    out = {}
    for schema in schemas:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
            [schema]).fetchall()]
        if not names:
            raise SystemExit(f"row_counts.py: schema {schema!r} has no tables")
        for name in names:
            out[f"{schema}.{name}"] = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse")
    parser.add_argument("--schema", action="append", required=True)
    parser.add_argument("--query", action="append", default=[], help="NAME=SQL returning one value")
    args = parser.parse_args()
    con = connect(args.warehouse, read_only=True)
    try:
        queries = {}
        for q in args.query:
            name, sep, sql = q.partition("=")
            if not sep:
                raise SystemExit(f"row_counts.py: --query {q!r} is not NAME=SQL")
            queries[name] = con.execute(sql).fetchone()[0]
        json.dump({"row_counts": row_counts(con, args.schema), "queries": queries}, sys.stdout)
        print()
    finally:
        con.close()


if __name__ == "__main__":
    main()
