"""Offline check of a dbt project on the Redshift target: it compiles without a connection, and every BI
model (models/bi/) is a materialized view there, recreated by each run with auto refresh off (see the BI
models' comment: the dims' table rebuild drops dependent materialized views through CASCADE).

Runs `dbt compile --target redshift --no-populate-cache` with placeholder connection settings (nothing
connects), then reads the manifest it wrote. The project is dbt_modeling/ by default, which must have BI
models; another project (--project, e.g. pipelines/sparkify/dbt) must compile, and its BI models, if it has
any, pass the same checks.

Usage: redshift_compile_check.py [--workdir DIR] [--project DIR]
       (dbt's target/ and logs/ go to --workdir; a temp dir otherwise)
Exits non-zero on failure; prints one JSON summary line on success.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dbt_cli import PROJECT, dbt_command  # noqa: E402

# Placeholders only: --no-populate-cache compiles without opening a connection.
OFFLINE_ENV = {
    "REDSHIFT_HOST": "example.invalid",
    "REDSHIFT_PORT": "5439",
    "REDSHIFT_USER": "dummy",
    "REDSHIFT_PASSWORD": "dummy",
    "REDSHIFT_DATABASE": "dev",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


def compile_redshift(workdir: str, project: str = PROJECT) -> dict:
    env = dict(os.environ, **OFFLINE_ENV)
    target = os.path.join(workdir, "target")
    cmd = dbt_command("compile", "redshift", workdir, "--no-populate-cache", project=project)
    proc = subprocess.run(cmd, env=env, cwd=project, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:])
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"FAILED: dbt compile --target redshift exited {proc.returncode}")
    where = "" if project == PROJECT else f" ({os.path.relpath(project)})"
    print(f"  ok  dbt compile --target redshift --no-populate-cache{where}", flush=True)
    with open(os.path.join(target, "manifest.json")) as f:
        return json.load(f)


def check(manifest: dict, require_bi: bool = True) -> dict:
    failures = []
    bi = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        path = node["original_file_path"].replace(os.sep, "/")
        if not path.startswith("models/bi/"):
            continue
        config = node["config"]
        bi[node["name"]] = config.get("materialized")
        if config.get("materialized") != "materialized_view":
            failures.append(f"{node['name']}: materialized={config.get('materialized')!r}, not 'materialized_view'")
        if config.get("full_refresh") is not True:
            failures.append(f"{node['name']}: full_refresh={config.get('full_refresh')!r}, not true "
                            "(it must be recreated after the dims' table rebuild)")
        if config.get("auto_refresh") not in (False, None):
            failures.append(f"{node['name']}: auto_refresh={config.get('auto_refresh')!r}, not false")
    if not bi and require_bi:
        failures.append("no model under models/bi/ in the manifest")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))
    for name in sorted(bi):
        print(f"  ok  {name} is a materialized view on Redshift (full refresh each run, no auto refresh)")
    return bi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="kept if given; a temporary directory otherwise")
    parser.add_argument("--project", default=PROJECT, help="dbt project folder (default: dbt_modeling/)")
    args = parser.parse_args()
    project = os.path.abspath(args.project)
    default = project == os.path.abspath(PROJECT)
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="deftunes-dbt-rs-")
    try:
        manifest = compile_redshift(workdir, project)
        bi = check(manifest, require_bi=default)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if default:
        print(json.dumps({"ok": True, "bi_models": bi}))
    else:
        models = sorted(n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model")
        print(json.dumps({"ok": True, "project": os.path.relpath(project), "models": models, "bi_models": bi}))


if __name__ == "__main__":
    main()
