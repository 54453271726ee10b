#!/usr/bin/env bash
# Offline checks of terraform/: fmt, checkov (the Terraform and the dbt image's Dockerfile), and the
# pytest suite in terraform/tests (workspace consistency + the state machine executed in moto).
# Run from anywhere; needs terraform, python3.11 (or python3) and PyPI for the first run.
# Venvs are cached under ${DEFTUNES_CACHE:-$HOME/.cache/deftunes} and reused while the
# requirements files are unchanged.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${DEFTUNES_CACHE:-$HOME/.cache/deftunes}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Venvs are rebuilt only when their requirements file's content changes.
venv() { PYTHON="$python" bash "$repo/local/python/venv.sh" "$@"; }

mkdir -p "$cache"
venv "$cache/venv-tf-checkov" "$here/requirements-checkov.txt"
venv "$cache/venv-tf-tests" "$here/requirements-tests.txt"

cd "$repo"
start=$SECONDS

echo "==> terraform fmt -check -recursive terraform"
terraform fmt -check -diff -recursive terraform

echo "==> checkov (terraform, --skip-download, opt-in resources on)"
"$cache/venv-tf-checkov/bin/checkov" -d terraform --framework terraform --skip-download \
  --config-file terraform/.checkov.yaml --var-file terraform/tests/checkov.tfvars --compact --quiet

echo "==> checkov (dockerfile: dbt_modeling/Dockerfile, the dbt task's image)"
"$cache/venv-tf-checkov/bin/checkov" -f dbt_modeling/Dockerfile --framework dockerfile --skip-download \
  --compact --quiet

echo "==> pytest terraform/tests"
"$cache/venv-tf-tests/bin/python" -m pytest -p no:cacheprovider -q -rs terraform/tests

echo "==> terraform checks passed in $((SECONDS - start)) s"
