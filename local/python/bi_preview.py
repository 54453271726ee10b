"""Prints the first rows of the two BI views of the local warehouse.

Usage: bi_preview.py <warehouse.duckdb> [rows]
"""
import sys

from duckdb_env import connect

VIEWS = ("sales_per_artist_per_year", "sales_per_country_per_month")


def main() -> None:
    warehouse = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    con = connect(warehouse, read_only=True)
    schema = con.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = ? LIMIT 1", [VIEWS[0]]
    ).fetchone()[0]
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


if __name__ == "__main__":
    main()
