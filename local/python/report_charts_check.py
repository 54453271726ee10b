"""Runs a pipeline's run-report charts (`[[report.charts]]` of its pipeline.toml) on the local run's warehouse.

Usage: report_charts_check.py <pipeline folder> --warehouse <warehouse.duckdb>

In AWS, run-control reads these queries from Redshift after dbt built the views; here they run on the DuckDB
warehouse the same dbt project built, with `{serving}` and `{bi}` as the local schemas (`<name>_serving`,
`<name>_bi`, the defaults of both). Asserts for each chart: the query runs, answers at least one row and two
columns, every value is a number or null, and the labels are distinct (one bar per label). Exits non-zero
with the reasons on failure.
"""
import argparse
import numbers
import os
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from duckdb_env import connect  # noqa: E402


def check(spec: dict, con) -> list[str]:
    name = spec["name"]
    schemas = {"{serving}": f"{name}_serving", "{bi}": f"{name}_bi"}
    charts = spec.get("report", {}).get("charts", [])
    if not charts:
        return [f"{name}: pipeline.toml has no [[report.charts]]"]
    problems = []
    for chart in charts:
        title, sql = chart["title"], chart["sql"]
        for placeholder, schema in schemas.items():
            sql = sql.replace(placeholder, schema)
        try:
            rel = con.execute(sql)
            rows = rel.fetchall()
            width = len(rel.description)
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            problems.append(f"{title!r}: the query fails on the local warehouse: {e}")
            continue
        if width != 2:
            problems.append(f"{title!r}: answers {width} columns, not two (label, value)")
            continue
        if not rows:
            problems.append(f"{title!r}: answers no rows")
        labels = [r[0] for r in rows]
        if len(set(labels)) != len(labels):
            problems.append(f"{title!r}: repeated labels {sorted({str(x) for x in labels if labels.count(x) > 1})}")
        bad = [r for r in rows if r[1] is not None and not isinstance(r[1], numbers.Number)]
        if bad:
            problems.append(f"{title!r}: values that are not numbers: {bad[:3]}")
        print(f"{name}: {title}: {len(rows)} rows, first {rows[:2]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", help="the pipeline's folder, e.g. pipelines/deftunes")
    parser.add_argument("--warehouse", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.pipeline, "pipeline.toml"), "rb") as f:
        spec = tomllib.load(f)
    con = connect(args.warehouse, read_only=True)
    try:
        problems = check(spec, con)
    finally:
        con.close()
    if problems:
        print("report charts check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{spec['name']}: every report chart answers on the local warehouse")


if __name__ == "__main__":
    main()
