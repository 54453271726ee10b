"""The Python comparator of `deftunes bench`: the sessions transform written with pyarrow and
pyiceberg, measured on the same machine and input as the Rust transform.

The transform's throughput goal is stated relative to "a pyarrow + pyiceberg implementation of
the same transform (vectorised read and explode, one append)"; this is that implementation, kept
in the repo so both are measured on the same day.

What it does, as the Rust transform does for `[tables.sessions]` of
pipelines/deftunes/pipeline.toml: a SQLite catalog (pyiceberg's SqlCatalog) and a file:// warehouse,
the table `deftunes_transform.sessions` partitioned by day(session_start_time) with the same
columns and types (data columns optional but the key, `session_id` and `item_index`, required and
the schema's identifier fields; the metadata columns required), and its Rust write settings as
table properties: ZSTD level 1, row groups of 128 Ki rows, files rolling at 128 MiB. The NDJSON
object is read in one `pyarrow.json.read_json` with an explicit schema (timestamps parsed by the
reader, as microseconds, no zone), its `session_items` exploded with `list_flatten`,
`list_parent_indices` and `take` (`item_index` from the list offsets), the constant metadata
columns added (`ingest_on` and the landing key from the path, `processing_timestamp` now,
`source_from` "api_sessions"), and the rows committed in ONE `table.append`.

What it leaves out (the Rust transform does these, so its numbers include their cost):
  - `record_hash` (a per-row content hash of the source record; the table has no such column),
    and the identity check of the object against the days it touches (on a fresh table the Rust
    transform reads nothing there, on the small-object runs it reads the day's earlier files);
  - the quality rules of rules/sessions.json and the quarantine of failing records;
  - lines that are not valid JSON, or fields of another type, fail the whole read here instead of
    being quarantined; timestamps with a zone offset are not converted to UTC;
  - small objects: the Rust writer leaves objects under 1 MiB uncompressed; this one always
    writes ZSTD, and leaves dictionaries on for every column (the Rust writer turns them off for
    the string key and the timestamps).

Usage (the venv of requirements-bench.txt; `make bench-python` runs both modes):
  python pyiceberg_bench.py large FILE --dir SCRATCH
      Creates the table in SCRATCH (which must not hold a catalog yet), then times reading FILE,
      exploding it and appending it. Prints one JSON line: seconds (wall, from just before the
      read to committed), cpu_seconds (this process's user+sys over the same span), peak_rss_bytes
      (the process's ru_maxrss, imports included), rows (appended, from the snapshot summary),
      records (input lines), bytes_in, files and bytes_out (data files of the snapshot).
  python pyiceberg_bench.py small FILE [FILE...] --dir SCRATCH --runs N
      A small object's cost end to end as a fresh process (a deployed function's cold start with
      the table already there): the first FILE creates the table (in a child process, untimed),
      then N children `small-one FILE`, on the next FILEs in turn (repeating them if fewer than
      N), each timed from spawn to exit: interpreter start, imports of pyarrow and pyiceberg,
      loading the catalog and table, read, explode and append. Prints one JSON line with the
      median and every run's seconds.
  python pyiceberg_bench.py small-one FILE --dir SCRATCH [--create]
      One small object into the table in SCRATCH (what `small` spawns); prints its JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAMESPACE = "deftunes_transform"
TABLE = "sessions"
CATALOG_NAME = "deftunes"
SOURCE_FROM = "api_sessions"
LANDING_PREFIX = "landing_zone/api/sessions/"
DEFAULT_INGEST_ON = "2020-01-01"
# The Rust writer's settings (shared/src/transform/writer.rs, catalog.rs, mod.rs).
TABLE_PROPERTIES = {
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    "write.parquet.compression-level": "1",
    "write.parquet.row-group-limit": str(128 * 1024),
    "write.target-file-size-bytes": str(128 << 20),
}
# Session-level columns, item columns, then the metadata columns (pipeline.toml order).
SESSION_COLUMNS = ["user_id", "session_id"]
ITEM_COLUMNS = [
    "song_id", "song_name", "artist_id", "artist_name", "price", "currency", "liked", "liked_since",
]
TAIL_COLUMNS = ["user_agent", "session_start_time"]
REQUIRED_DATA_COLUMNS = ["session_id", "item_index"]


class BenchError(Exception):
    """A usage or input problem, reported as one line without a traceback."""


# --- the table ---------------------------------------------------------------------------------


def open_catalog(scratch: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        CATALOG_NAME,
        uri=f"sqlite:///{scratch / 'catalog.db'}",
        warehouse=f"file://{scratch / 'warehouse'}",
    )


def iceberg_schema():
    """The sessions table's Iceberg schema, as the Rust `table_schema` builds it (no record_hash)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import (
        BooleanType, DateType, DoubleType, IntegerType, NestedField, StringType, TimestampType,
    )

    data = [
        ("user_id", StringType()),
        ("session_id", StringType()),
        ("item_index", IntegerType()),
        ("song_id", StringType()),
        ("song_name", StringType()),
        ("artist_id", StringType()),
        ("artist_name", StringType()),
        ("price", DoubleType()),
        ("currency", StringType()),
        ("liked", BooleanType()),
        ("liked_since", TimestampType()),
        ("user_agent", StringType()),
        ("session_start_time", TimestampType()),
    ]
    metadata = [
        ("ingest_on", DateType()),
        ("processing_timestamp", TimestampType()),
        ("source_from", StringType()),
        ("source_object", StringType()),
    ]
    fields, key_ids = [], []
    for i, (name, ty) in enumerate(data + metadata, start=1):
        required = name in REQUIRED_DATA_COLUMNS or i > len(data)
        if name in REQUIRED_DATA_COLUMNS:
            key_ids.append(i)
        fields.append(NestedField(field_id=i, name=name, field_type=ty, required=required))
    return Schema(*fields, identifier_field_ids=key_ids)


def create_table(scratch: Path):
    """The namespace and table in a fresh catalog under `scratch`."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    if (scratch / "catalog.db").exists():
        raise BenchError(f"{scratch} already holds a catalog.db: give a fresh --dir (or remove it)")
    (scratch / "warehouse").mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(scratch)
    catalog.create_namespace_if_not_exists(NAMESPACE)
    schema = iceberg_schema()
    source_id = schema.find_field("session_start_time").field_id
    spec = PartitionSpec(
        PartitionField(
            source_id=source_id, field_id=1000, transform=DayTransform(),
            name="session_start_time_day",
        )
    )
    return catalog.create_table(
        (NAMESPACE, TABLE), schema=schema, partition_spec=spec, properties=TABLE_PROPERTIES
    )


def load_table(scratch: Path):
    from pyiceberg.exceptions import NoSuchTableError

    if not (scratch / "catalog.db").exists():
        raise BenchError(f"{scratch} has no catalog.db: create the table first")
    try:
        return open_catalog(scratch).load_table((NAMESPACE, TABLE))
    except NoSuchTableError as e:
        raise BenchError(f"{scratch}/catalog.db has no table {NAMESPACE}.{TABLE}") from e


# --- the transform -----------------------------------------------------------------------------


def landing_schema():
    """The NDJSON record as the reader parses it (other fields are ignored)."""
    import pyarrow as pa

    item = pa.struct([
        ("song_id", pa.string()),
        ("song_name", pa.string()),
        ("artist_id", pa.string()),
        ("artist_name", pa.string()),
        ("price", pa.float64()),
        ("currency", pa.string()),
        ("liked", pa.bool_()),
        ("liked_since", pa.timestamp("us")),
    ])
    return pa.schema([
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("session_items", pa.list_(item)),
        ("user_agent", pa.string()),
        ("session_start_time", pa.timestamp("us")),
    ])


def landing_key(path: Path, ingest_on: str) -> str:
    """The object's landing key: the path from `landing_zone/` on, else the file under the
    sessions landing folder of `ingest_on` (as `deftunes bench` lands its small objects)."""
    text = path.resolve().as_posix()
    at = text.rfind("/landing_zone/")
    if at >= 0:
        return text[at + 1:]
    return f"{LANDING_PREFIX}ingest_on={ingest_on}/{path.name}"


def ingest_on_of(key: str, default: str) -> dt.date:
    m = re.search(r"/ingest_on=(\d{4}-\d{2}-\d{2})/", key)
    return dt.date.fromisoformat(m.group(1) if m else default)


def read_sessions(path: Path):
    import pyarrow.json as pj

    try:
        return pj.read_json(
            path,
            parse_options=pj.ParseOptions(
                explicit_schema=landing_schema(), unexpected_field_behavior="ignore"
            ),
        )
    except Exception as e:  # pyarrow raises ArrowInvalid with the line's problem
        raise BenchError(f"reading {path}: {e}") from e


def explode(sessions, arrow_schema, key: str, ingest_on: dt.date, processed: dt.datetime):
    """One row per session item, in the table's column order and Arrow schema."""
    import pyarrow as pa
    import pyarrow.compute as pc

    items = sessions.column("session_items")
    parents = pc.list_parent_indices(items)  # global row of each item, across chunks
    flat = pc.list_flatten(items)
    n = len(flat)
    # item_index = position in the flattened items - where the item's list starts.
    lengths = pc.fill_null(pc.list_value_length(items), 0)
    starts = pc.subtract(pc.cumulative_sum(lengths), lengths)
    position = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int32()), n)), 1)
    item_index = pc.subtract(position, pc.take(starts, parents))

    # Struct children with the item's own validity folded in.
    fields = {
        name: pa.chunked_array([c.flatten()[i] for c in flat.chunks], type=flat.type.field(i).type)
        for i, name in enumerate(flat.type.names)
    }
    session_cols = sessions.select(SESSION_COLUMNS + TAIL_COLUMNS).take(parents)
    columns = {
        "user_id": session_cols.column("user_id"),
        "session_id": session_cols.column("session_id"),
        "item_index": item_index,
        **{name: fields[name] for name in ITEM_COLUMNS},
        "user_agent": session_cols.column("user_agent"),
        "session_start_time": session_cols.column("session_start_time"),
        "ingest_on": pa.repeat(pa.scalar(ingest_on, pa.date32()), n),
        "processing_timestamp": pa.repeat(pa.scalar(processed, pa.timestamp("us")), n),
        "source_from": pa.repeat(pa.scalar(SOURCE_FROM, pa.string()), n),
        "source_object": pa.repeat(pa.scalar(key, pa.string()), n),
    }
    for name in REQUIRED_DATA_COLUMNS:
        if columns[name].null_count:
            raise BenchError(f"{key}: {columns[name].null_count} items without {name}")
    arrays = [columns[f.name] for f in arrow_schema]
    return pa.Table.from_arrays(
        [a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays],
        schema=arrow_schema,
    )


def transform(table, path: Path, ingest_on_default: str) -> dict:
    """Read, explode and append `path` into `table` (one commit); the snapshot's counts."""
    key = landing_key(path, ingest_on_default)
    ingest_on = ingest_on_of("/" + key, ingest_on_default)
    processed = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    sessions = read_sessions(path)
    rows = explode(sessions, table.schema().as_arrow(), key, ingest_on, processed)
    table.append(rows)
    summary = table.current_snapshot().summary
    return {
        "rows": int(summary["added-records"]),
        "records": sessions.num_rows,
        "files": int(summary["added-data-files"]),
        "bytes_out": int(summary["added-files-size"]),
        "exploded_rows": rows.num_rows,
    }


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(table, path: Path, ingest_on_default: str) -> dict:
    cpu, start = cpu_seconds(), time.perf_counter()
    counts = transform(table, path, ingest_on_default)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if counts.pop("exploded_rows") != counts["rows"]:
        raise BenchError(f"{path}: the snapshot added {counts['rows']} rows, not every item")
    return {
        "seconds": round(seconds, 6),
        "cpu_seconds": round(cpu, 6),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **counts,
        "bytes_in": path.stat().st_size,
    }


# --- the modes ---------------------------------------------------------------------------------


def run_large(args) -> dict:
    table = create_table(args.dir)
    import pyarrow
    import pyiceberg

    out = measure(table, args.files[0], args.ingest_on)
    out["versions"] = {"pyarrow": pyarrow.__version__, "pyiceberg": pyiceberg.__version__}
    return {"mode": "large", "file": str(args.files[0]), **out}


def run_small_one(args) -> dict:
    table = create_table(args.dir) if args.create else load_table(args.dir)
    return measure(table, args.files[0], args.ingest_on)


def spawn_small_one(path: Path, args, create: bool) -> tuple[float, dict]:
    """A child `small-one` on `path`: its wall time from spawn to exit, and its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "small-one", str(path),
           "--dir", str(args.dir), "--ingest-on", args.ingest_on]
    if create:
        cmd.append("--create")
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"small-one {path} exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        return seconds, json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as e:
        raise BenchError(f"small-one {path} printed no JSON line: {proc.stdout!r}") from e


def run_small(args) -> dict:
    if len(args.files) < 2:
        raise BenchError("small needs at least two files: one creates the table, the others are timed")
    if (args.dir / "catalog.db").exists():
        raise BenchError(f"{args.dir} already holds a catalog.db: give a fresh --dir (or remove it)")
    args.dir.mkdir(parents=True, exist_ok=True)
    create_seconds, _ = spawn_small_one(args.files[0], args, create=True)
    timed = args.files[1:]
    runs = []
    for i in range(args.runs):
        path = timed[i % len(timed)]
        seconds, child = spawn_small_one(path, args, create=False)
        if child["rows"] == 0:
            raise BenchError(f"the small object {path} committed no row")
        runs.append((seconds, child, path))
    e2e = [r[0] for r in runs]
    median_run = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return {
        "mode": "small",
        "runs": args.runs,
        "end_to_end_seconds": round(statistics.median(e2e), 6),
        "in_process_seconds": round(statistics.median(r[1]["seconds"] for r in runs), 6),
        "all_end_to_end_seconds": [round(s, 6) for s in e2e],
        "median_run": {"file": str(median_run[2]), **median_run[1]},
        "create_end_to_end_seconds": round(create_seconds, 6),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="The pyarrow + pyiceberg comparator of `deftunes bench` (see the docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", choices=["large", "small", "small-one"])
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="NDJSON sessions objects")
    p.add_argument("--dir", type=Path, required=True,
                   help="scratch directory: catalog.db and warehouse/ (fresh for large and small)")
    p.add_argument("--runs", type=int, default=11, help="small: timed runs (default 11)")
    p.add_argument("--create", action="store_true", help="small-one: create the table first")
    p.add_argument("--ingest-on", default=DEFAULT_INGEST_ON,
                   help="ingest_on for a FILE whose path has no ingest_on=YYYY-MM-DD/ "
                        f"(default {DEFAULT_INGEST_ON})")
    args = p.parse_args(argv)
    if args.mode in ("large", "small-one") and len(args.files) != 1:
        p.error(f"{args.mode} takes one FILE")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    for f in args.files:
        if not f.is_file():
            p.error(f"no such file: {f}")
    try:
        dt.date.fromisoformat(args.ingest_on)
    except ValueError:
        p.error(f"--ingest-on {args.ingest_on!r} is not a YYYY-MM-DD date")
    args.dir = args.dir.resolve()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    run = {"large": run_large, "small": run_small, "small-one": run_small_one}[args.mode]
    try:
        out = run(args)
    except BenchError as e:
        print(f"pyiceberg_bench: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
