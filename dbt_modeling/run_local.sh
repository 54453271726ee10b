#!/usr/bin/env bash
# `dbt build --target local` on the DuckDB warehouse over the SQLite Iceberg catalog. The build's on-run-start
# hook (macros/local_warehouse.sql) re-points the warehouse's transform-zone views at each table's current
# Iceberg metadata file, so every build reads the current snapshots: nothing to refresh beforehand.
# Usage: dbt_modeling/run_local.sh <catalog.db> <warehouse.duckdb> [extra dbt build args...]
# Env: DEFTUNES_PYTHON (default $HOME/.cache/deftunes/venv-py/bin/python). dbt's target/ and logs/ go
# beside the warehouse file, so the clone stays clean.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 <catalog.db> <warehouse.duckdb> [dbt build args...]" >&2
  exit 2
fi
if [ ! -f "$1" ]; then
  echo "$0: catalog not found: $1" >&2
  exit 2
fi
export DEFTUNES_CATALOG=$(realpath "$1")
warehouse=$(realpath -m "$2")
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${DEFTUNES_PYTHON:-$HOME/.cache/deftunes/venv-py/bin/python}
bin=$(dirname "$py")
export DEFTUNES_WAREHOUSE=$warehouse
export DEFTUNES_DUCKDB_EXT=${DEFTUNES_DUCKDB_EXT:-$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import duckdb_env; print(duckdb_env.extension_dir())' "$here/../local/python")}
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
work=$(dirname "$warehouse")/dbt
mkdir -p "$(dirname "$warehouse")"
cd "$here"
start=$EPOCHREALTIME
"$bin/dbt" build --target local --profiles-dir "$here" --project-dir "$here" \
  --target-path "$work/target" --log-path "$work/logs" "$@"
end=$EPOCHREALTIME
awk -v a="$start" -v b="$end" 'BEGIN { printf "dbt build: %.1fs\n", b - a }'
