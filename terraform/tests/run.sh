#!/usr/bin/env bash
# Offline checks of terraform/: fmt, checkov, and the pytest suite in terraform/tests
# (workspace consistency + the state machine executed in moto).
# Run from anywhere; needs terraform, python3.11 (or python3) and PyPI for the first run.
# Venvs are cached under ${DEFTUNES_CACHE:-$HOME/.cache/deftunes} and reused while the
# requirements files are unchanged.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${DEFTUNES_CACHE:-$HOME/.cache/deftunes}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# venv <dir> <requirements file>: create or refresh a venv when its requirements changed.
venv() {
  local dir="$1" req="$2" stamp
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ -x "$dir/bin/python" && -f "$dir/.requirements.sha256" && "$(cat "$dir/.requirements.sha256")" == "$stamp" ]]; then
    return
  fi
  echo "==> preparing $dir" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install --quiet --upgrade pip >&2
  "$dir/bin/pip" install --quiet -r "$req" >&2
  echo "$stamp" > "$dir/.requirements.sha256"
}

mkdir -p "$cache"
venv "$cache/venv-tf-checkov" "$here/requirements-checkov.txt"
venv "$cache/venv-tf-tests" "$here/requirements-tests.txt"

cd "$repo"
start=$SECONDS

echo "==> terraform fmt -check -recursive terraform"
terraform fmt -check -diff -recursive terraform

echo "==> checkov (terraform, --skip-download)"
"$cache/venv-tf-checkov/bin/checkov" -d terraform --framework terraform --skip-download \
  --config-file terraform/.checkov.yaml --compact --quiet

echo "==> pytest terraform/tests"
"$cache/venv-tf-tests/bin/python" -m pytest -p no:cacheprovider -q -rs terraform/tests

echo "==> terraform checks passed in $((SECONDS - start)) s"
