#!/usr/bin/env bash
# `dbt build --target local` on the DuckDB warehouse over the SQLite Iceberg catalog. The build's on-run-start
# hook (macros/local_warehouse.sql) re-points the warehouse's transform-zone views at each table's current
# Iceberg metadata file, so every build reads the current snapshots: nothing to refresh beforehand.
# Usage: dbt_modeling/run_local.sh [--project DIR] <catalog.db> <warehouse.duckdb> [extra dbt build args...]
# --project DIR (or env DEFTUNES_DBT_PROJECT): the dbt project to build; default dbt_modeling/, this script's
# folder. A project's local.env, if it has one, lists KEY=VALUE defaults exported for its build unless the
# environment sets them already (pipelines/sparkify/dbt/local.env: the catalog namespace and source schema).
# Env: DEFTUNES_PYTHON (default $HOME/.cache/deftunes/venv-py/bin/python). dbt's target/ and logs/ go
# beside the warehouse file, so the clone stays clean: in dbt/ for dbt_modeling, dbt-<project name>/ otherwise.
set -euo pipefail
usage() {
  echo "usage: $0 [--project DIR] <catalog.db> <warehouse.duckdb> [dbt build args...]" >&2
  exit 2
}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=${DEFTUNES_DBT_PROJECT:-$here}
if [ "${1:-}" = "--project" ]; then
  [ $# -ge 2 ] || usage
  project=$2
  shift 2
fi
[ $# -ge 2 ] || usage
if [ ! -f "$project/dbt_project.yml" ]; then
  echo "$0: not a dbt project (no dbt_project.yml): $project" >&2
  exit 2
fi
project=$(cd "$project" && pwd)
if [ ! -f "$1" ]; then
  echo "$0: catalog not found: $1" >&2
  exit 2
fi
export DEFTUNES_CATALOG=$(realpath "$1")
warehouse=$(realpath -m "$2")
shift 2
# The project's defaults: data, not sourced; a variable the environment sets wins.
if [ -f "$project/local.env" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    key=${line%%=*}
    if [[ "$line" != *=* || ! "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "$0: $project/local.env: not KEY=VALUE: $line" >&2
      exit 2
    fi
    if [ -z "${!key+set}" ]; then
      export "$key=${line#*=}"
    fi
  done < "$project/local.env"
fi
py=${DEFTUNES_PYTHON:-$HOME/.cache/deftunes/venv-py/bin/python}
bin=$(dirname "$py")
export DEFTUNES_WAREHOUSE=$warehouse
export DEFTUNES_DUCKDB_EXT=${DEFTUNES_DUCKDB_EXT:-$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import duckdb_env; print(duckdb_env.extension_dir())' "$here/../local/python")}
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
if [ "$project" = "$here" ]; then
  work=$(dirname "$warehouse")/dbt
else
  name=$(sed -n "s/^name:[[:space:]]*[\"']\{0,1\}\([A-Za-z0-9_]*\).*/\1/p" "$project/dbt_project.yml" | head -n 1)
  work=$(dirname "$warehouse")/dbt-${name:-$(basename "$project")}
fi
mkdir -p "$(dirname "$warehouse")"
cd "$project"
start=$EPOCHREALTIME
"$bin/dbt" build --target local --profiles-dir "$project" --project-dir "$project" \
  --target-path "$work/target" --log-path "$work/logs" "$@"
end=$EPOCHREALTIME
awk -v a="$start" -v b="$end" 'BEGIN { printf "dbt build: %.1fs\n", b - a }'
