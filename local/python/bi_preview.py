"""Prints the first rows of the two BI views of the local warehouse, and how many dimension members are
inferred (late-arriving: referenced by session items, their own record not landed yet).

Usage: bi_preview.py <warehouse.duckdb> [rows]
       bi_preview.py <warehouse.duckdb> --json
With --json it prints only one JSON object, the serving counts for the run summary:
  {"inferred_users": n, "inferred_songs": m, "inferred_artists": k}
(each the number of rows of dim_users / dim_songs / dim_artists with is_inferred; 0 for a dimension
built before it had the column).
"""
import json
import sys

from duckdb_env import connect

VIEWS = ("sales_per_artist_per_year", "sales_per_country_per_month")
# Summary key -> dimension table whose is_inferred rows it counts.
INFERRED = {"inferred_users": "dim_users", "inferred_songs": "dim_songs", "inferred_artists": "dim_artists"}


def _schema_of(con, relation: str):
    row = con.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = ? LIMIT 1", [relation]
    ).fetchone()
    return row[0] if row else None


def inferred_members(con) -> dict:
    """{"inferred_users": n, "inferred_songs": m, "inferred_artists": k} of the warehouse's dimensions."""
    out = {}
    for key, dim in INFERRED.items():
        schema = _schema_of(con, dim)
        has_column = schema is not None and con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND column_name = 'is_inferred'", [schema, dim]
        ).fetchone()[0] > 0
        out[key] = (
            con.execute(f"SELECT count(*) FROM {schema}.{dim} WHERE is_inferred").fetchone()[0] if has_column else 0
        )
    return out


def preview(con, n: int) -> None:
    schema = _schema_of(con, VIEWS[0])
    for view in VIEWS:
        rel = con.execute(
            f"SELECT * REPLACE (round(total_sales, 2) AS total_sales) FROM {schema}.{view} "
            f"ORDER BY total_sales DESC LIMIT {n}"
        )
        cols = [d[0] for d in rel.description]
        rows = rel.fetchall()
        total = con.execute(f"SELECT count(*) FROM {schema}.{view}").fetchone()[0]
        print(f"      {schema}.{view} ({total} rows), first {len(rows)}:")
        # max() over a list: an empty view has no rows, and max() of one int alone raises TypeError.
        widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(cols)]
        print("        " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            print("        " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    inferred = inferred_members(con)
    print("      inferred members (late-arriving, completed when their record lands): "
          + ", ".join(f"{k.removeprefix('inferred_')} {v}" for k, v in inferred.items()))


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--json"]
    as_json = len(args) != len(sys.argv) - 1
    warehouse = args[0]
    con = connect(warehouse, read_only=True)
    try:
        if as_json:
            print(json.dumps(inferred_members(con)))
        else:
            preview(con, int(args[1]) if len(args) > 1 else 5)
    finally:
        con.close()


if __name__ == "__main__":
    main()
