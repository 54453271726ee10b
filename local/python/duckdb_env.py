"""DuckDB connections with the offline extensions (iceberg, avro, sqlite) installed from their
PyPI packages, never downloaded."""
import os
import sys

import duckdb

EXTENSIONS = ("avro", "iceberg", "sqlite")


def extension_dir() -> str:
    return os.environ.get("DEFTUNES_DUCKDB_EXT", os.path.join(sys.prefix, "duckdb_extensions"))


def install() -> None:
    import duckdb_extensions

    con = duckdb.connect()
    con.execute(f"SET extension_directory = '{extension_dir()}'")
    for name in EXTENSIONS:
        duckdb_extensions.import_extension(name, con=con)


def connect(database: str = ":memory:", read_only: bool = False) -> "duckdb.DuckDBPyConnection":
    con = duckdb.connect(database, read_only=read_only)
    con.execute(f"SET extension_directory = '{extension_dir()}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = true")
    for name in EXTENSIONS:
        con.execute(f"LOAD {name}")
    return con


if __name__ == "__main__":
    install()
    connect()
    print("duckdb extensions ready in", extension_dir())
