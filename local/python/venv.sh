#!/usr/bin/env bash
# venv.sh <dir> <requirements file> [setup script]: create or refresh a Python venv when the
# requirements file's content changed (a content hash, not mtimes: a fresh clone reuses the cache),
# then run the optional setup script with the venv's python before stamping it ready.
# Python: $PYTHON, else python3.11, else python3.
set -euo pipefail
dir=$1 req=$2 setup=${3:-}
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$(cat "$req" ${setup:+"$setup"} | sha256sum | cut -d' ' -f1)"
if [[ -x "$dir/bin/python" && -f "$dir/.requirements.sha256" && "$(cat "$dir/.requirements.sha256")" == "$stamp" ]]; then
  exit 0
fi
echo "==> preparing $dir from $req" >&2
rm -rf "$dir"
"$python" -m venv "$dir"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/pip" install --quiet --upgrade pip >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/pip" install --quiet -r "$req" >&2
if [[ -n "$setup" ]]; then
  "$dir/bin/python" "$setup" >&2
fi
echo "$stamp" > "$dir/.requirements.sha256"
