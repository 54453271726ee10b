"""Reads transform-zone Iceberg tables with DuckDB, at the current snapshot the SQLite catalog
records, and prints JSON: {table: {"rows": n, "metadata_location": ..., "sample": [...], "checks": {...}}}.

Usage: iceberg_read.py <catalog.db> <namespace> <table> [<table> ...]
Used by the Rust tests to prove another engine reads what iceberg-rust wrote.
"""
import json
import sys

from duckdb_env import connect


def main() -> None:
    catalog, namespace, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
    con = connect()
    con.execute(f"ATTACH '{catalog}' AS cat (TYPE sqlite, READ_ONLY)")
    out = {}
    for table in tables:
        row = con.execute(
            "SELECT metadata_location FROM cat.iceberg_tables WHERE table_namespace = ? AND table_name = ?",
            [namespace, table],
        ).fetchone()
        if row is None:
            out[table] = None
            continue
        loc = row[0].removeprefix("file://")
        scan = f"iceberg_scan('{loc}')"
        n = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        key = {"users": "user_id", "sessions": "session_id, item_index", "songs": "track_id"}.get(table, cols[0])
        sample = con.execute(f"SELECT * FROM {scan} ORDER BY {key} LIMIT 3").fetchall()
        checks = {}
        if table == "sessions":
            checks["price_sum"] = con.execute(f"SELECT round(sum(price), 2) FROM {scan}").fetchone()[0]
            checks["liked_since_null_iff_not_liked"] = con.execute(
                f"SELECT count(*) FROM {scan} WHERE (liked_since IS NULL) <> (NOT liked)"
            ).fetchone()[0] == 0
        if table == "users":
            checks["distinct_user_id"] = con.execute(f"SELECT count(DISTINCT user_id) FROM {scan}").fetchone()[0]
        if table == "songs":
            checks["duration_sum"] = con.execute(f"SELECT round(sum(duration), 1) FROM {scan}").fetchone()[0]
        checks["partitions"] = [str(r[0]) for r in con.execute(f"SELECT DISTINCT ingest_on FROM {scan} ORDER BY 1").fetchall()]
        out[table] = {
            "rows": n,
            "metadata_location": row[0],
            "columns": cols,
            "types": types,
            "sample": [[str(v) for v in r] for r in sample],
            "checks": checks,
        }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
