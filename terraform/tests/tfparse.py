"""Helpers shared by the Terraform tests: parse the HCL, resolve the few expressions the
tests need, render the state machine template with Terraform's own templatefile()."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import zipfile
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import hcl2

TF_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TF_DIR.parent
MODULES_DIR = TF_DIR / "modules"
# Everything per pipeline (functions, orchestration, dbt task), instantiated once per pipeline.
PIPELINE_DIR = MODULES_DIR / "pipeline"
STATE_MACHINE_TEMPLATE = MODULES_DIR / "orchestration" / "state_machine.asl.json.tftpl"


def unquote(value):
    """python-hcl2 keeps the quotes of string literals: '"abc"' -> 'abc'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@lru_cache(maxsize=None)
def parse_dir(directory: Path) -> dict[str, dict]:
    """{file name: parsed HCL} of one module directory."""
    out = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as fh:
            out[path.name] = hcl2.load(fh)
    return out


def blocks(directory: Path, kind: str) -> dict[str, dict]:
    """Blocks of one kind ("module", "variable", "output") in a directory, by name."""
    found = {}
    for parsed in parse_dir(directory).values():
        for entry in parsed.get(kind, []):
            for name, body in entry.items():
                found[unquote(name)] = body
    return found


def resources(directory: Path, rtype: str) -> dict[str, dict]:
    found = {}
    for parsed in parse_dir(directory).values():
        for entry in parsed.get("resource", []):
            for t, named in entry.items():
                if unquote(t) == rtype:
                    for name, body in named.items():
                        found[unquote(name)] = body
    return found


def locals_of(directory: Path) -> dict:
    merged = {}
    for parsed in parse_dir(directory).values():
        for entry in parsed.get("locals", []):
            merged.update(entry)
    return merged


def variable_default(directory: Path, name: str):
    return unquote(blocks(directory, "variable")[name].get("default"))


# Where modules/lambda_function is called: the root (the demo source) and modules/pipeline (the
# pipeline functions), with the source path each uses.
LAMBDA_MODULE_CALLERS = {TF_DIR: "./modules/lambda_function", PIPELINE_DIR: "../lambda_function"}


def lambda_modules() -> dict[str, dict]:
    """Calls of modules/lambda_function in the root and in modules/pipeline, by module name
    (names are unique across both)."""
    found = {}
    for directory, source in LAMBDA_MODULE_CALLERS.items():
        for name, body in blocks(directory, "module").items():
            if unquote(body.get("source")) == source:
                assert name not in found, f"module {name} is declared twice"
                found[name] = body
    return found


def module_environment(body: dict) -> dict:
    """The env vars a modules/lambda_function call may set: its `environment` and its
    `optional_environment` (left out where null), both literal maps."""
    env, optional = body.get("environment", {}), body.get("optional_environment", {})
    assert isinstance(env, dict) and isinstance(optional, dict), f"environment must be literal maps, got {env!r}, {optional!r}"
    assert not set(env) & set(optional), f"set in environment and optional_environment: {sorted(set(env) & set(optional))}"
    return {**env, **optional}


def lambda_module_dir(name: str) -> Path:
    """The directory whose module block `name` calls modules/lambda_function."""
    for directory in LAMBDA_MODULE_CALLERS:
        if name in blocks(directory, "module"):
            return directory
    raise KeyError(name)


ZIP_PATH = re.compile(r"^\$\{(?:local|var)\.lambda_artifacts_dir\}/([a-z0-9_-]+)/bootstrap\.zip$")


def crate_of_module(body: dict) -> str | None:
    """Crate name from the module's package_path, or None if the path is not the cargo-lambda one."""
    m = ZIP_PATH.match(unquote(body.get("package_path", "")))
    return m.group(1) if m else None


def function_name_of(body: dict, name_prefix: str | None = None) -> str:
    """function_name with var.project (root) or var.settings.name (a pipeline's name prefix)
    resolved: by default the project's default, the name prefix of the pipeline keyed by it."""
    project = variable_default(TF_DIR, "project")
    prefix = name_prefix or project
    return unquote(body["function_name"]).replace("${var.project}", project).replace("${var.settings.name}", prefix)


def workspace_crates() -> dict[str, Path]:
    """functions/<dir> with a Cargo.toml -> {binary name: dir}. cargo-lambda names the zip
    folder after the binary, which is the package name unless a [[bin]] renames it."""
    import tomllib

    crates = {}
    for cargo in sorted((REPO_ROOT / "functions").glob("*/Cargo.toml")):
        manifest = tomllib.loads(cargo.read_text())
        bins = [b["name"] for b in manifest.get("bin", []) if "name" in b]
        name = bins[0] if len(bins) == 1 else manifest["package"]["name"]
        crates[name] = cargo.parent
    return crates


# ------------------------------------------------------------------ template rendering
def terraform_exe() -> str:
    exe = shutil.which("terraform")
    if exe is None:
        raise RuntimeError("terraform is not on PATH: the tests render templates with its templatefile()")
    return exe


def render_template(values: dict, text: str | None = None) -> str:
    """The state machine template (or `text`) rendered by Terraform's own templatefile(), in
    `terraform console` (no configuration, no provider, no network). `values` reach the
    template through jsondecode(), so lists of objects are what a module variable of type
    list(object) holds. A missing variable or a template error raises RuntimeError."""
    with tempfile.TemporaryDirectory(prefix="tf-render-") as tmp:
        tmp = Path(tmp)
        template = STATE_MACHINE_TEMPLATE
        if text is not None:
            template = tmp / "template.tftpl"
            template.write_text(text)
        (tmp / "values.json").write_text(json.dumps(values))
        expr = f'base64encode(templatefile({json.dumps(str(template))}, jsondecode(file("values.json"))))\n'
        proc = subprocess.run([terraform_exe(), "console", "-no-color"], input=expr, cwd=tmp, capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1"))
        out = proc.stdout.strip()
        if proc.returncode != 0 or not re.fullmatch(r'"[A-Za-z0-9+/=]*"', out):
            # Terraform wraps its messages: collapsed to one line, so that callers can match them.
            raise RuntimeError("templatefile() failed: " + " ".join((proc.stderr + out).split()))
        return base64.b64decode(out[1:-1]).decode()


def deploy_json(pipeline: str) -> dict:
    """pipelines/<pipeline>/deploy.json, as modules/pipeline_settings reads it."""
    return json.loads((REPO_ROOT / "pipelines" / pipeline / "deploy.json").read_text())


def definition_vars() -> dict[str, str]:
    """The orchestration module's local.definition_vars: {template variable: HCL expression}."""
    return locals_of(MODULES_DIR / "orchestration")["definition_vars"]


FUNCTION_ARN_EXPR = re.compile(r'^\$\{var\.function_arns\["([a-z0-9_-]+)"\]\}$')


# ------------------------------------------------------------------ pipeline settings, planned
SETTINGS_MODULE = MODULES_DIR / "pipeline_settings"


def settings_defaults(**overrides) -> dict:
    """The `defaults` object the root passes to modules/pipeline_settings: the root variables'
    defaults, with the required source settings filled in (as a tfvars file would)."""
    defaults = {
        "api_base_url": "https://api.deftunes.example.com",
        "pg_host": "deftunes-db.example.com",
        "pg_port": variable_default(TF_DIR, "pg_port"),
        "pg_database": variable_default(TF_DIR, "pg_database"),
        "pg_user": variable_default(TF_DIR, "pg_user"),
        "pg_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-db-AbCdEf",
        "pg_sslmode": variable_default(TF_DIR, "pg_sslmode"),
        "mysql_host": "classicmodels-db.example.com",
        "mysql_port": variable_default(TF_DIR, "mysql_port"),
        "mysql_database": variable_default(TF_DIR, "mysql_database"),
        "mysql_user": variable_default(TF_DIR, "mysql_user"),
        "mysql_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mysql-db-AbCdEf",
        "mysql_sslmode": variable_default(TF_DIR, "mysql_sslmode"),
        # None by default: a pipeline with an OAuth REST source (spotify) sets its own, or a test does.
        "oauth_token_url": variable_default(TF_DIR, "oauth_token_url"),
        "oauth_client_id": variable_default(TF_DIR, "oauth_client_id"),
        "oauth_client_secret_arn": variable_default(TF_DIR, "oauth_client_secret_arn"),
        "oauth_scope": variable_default(TF_DIR, "oauth_scope"),
        "oauth_secret_kms_key_arn": variable_default(TF_DIR, "oauth_secret_kms_key_arn"),
        "api_retry_after_max_secs": variable_default(TF_DIR, "api_retry_after_max_secs"),
        "songs_table": variable_default(TF_DIR, "songs_table"),
        "songs_subnet_ids": ["subnet-0aaa1111"],
        "songs_security_group_ids": ["sg-0songs"],
        "external_schema": variable_default(TF_DIR, "external_schema"),
        "serving_schema": variable_default(TF_DIR, "serving_schema"),
        "bi_schema": variable_default(TF_DIR, "bi_schema"),
        "schedule_enabled": variable_default(TF_DIR, "schedule_enabled"),
        "schedule_expression": "cron(30 1 * * ? *)",
        "backfill_max_concurrency": variable_default(TF_DIR, "backfill_max_concurrency"),
        "catch_up_max_windows": variable_default(TF_DIR, "catch_up_max_windows"),
    }
    defaults.update(overrides)
    return defaults


def plan_settings(pipelines: dict, project: str | None = None, lake_key_prefix: str = "", **defaults) -> dict:
    """modules/pipeline_settings evaluated by Terraform itself (init, apply of a configuration
    that only calls it: no provider, no network), with `pipelines` as var.pipelines. Returns its
    `pipelines` output; a failed validation or precondition raises RuntimeError with Terraform's
    message collapsed to one line."""
    with tempfile.TemporaryDirectory(prefix="tf-settings-") as tmp:
        tmp = Path(tmp)
        (tmp / "main.tf").write_text(
            'variable "pipelines" {\n  type = any\n}\n'
            'variable "defaults" {\n  type = any\n}\n'
            'module "settings" {\n'
            f"  source          = {json.dumps(str(SETTINGS_MODULE))}\n"
            f"  project         = {json.dumps(project or variable_default(TF_DIR, 'project'))}\n"
            "  pipelines       = var.pipelines\n"
            f"  pipelines_dir   = {json.dumps(str(REPO_ROOT / 'pipelines'))}\n"
            f"  lake_key_prefix = {json.dumps(lake_key_prefix)}\n"
            "  defaults        = var.defaults\n"
            "}\n"
            'output "pipelines" {\n  value = module.settings.pipelines\n}\n'
        )
        (tmp / "values.tfvars.json").write_text(json.dumps({"pipelines": pipelines, "defaults": settings_defaults(**defaults)}))
        env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null")
        for args in (["init", "-input=false", "-no-color"],
                     ["apply", "-auto-approve", "-input=false", "-no-color", "-var-file=values.tfvars.json"]):
            proc = subprocess.run([terraform_exe(), *args], cwd=tmp, capture_output=True, text=True, timeout=120, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"terraform {args[0]} failed: " + " ".join((proc.stderr + proc.stdout).split()))
        proc = subprocess.run([terraform_exe(), "output", "-json", "pipelines"], cwd=tmp, capture_output=True, text=True,
                              timeout=60, env=env, check=True)
        return json.loads(proc.stdout)


def console_eval(expr: str, variables: dict) -> object:
    """An HCL expression evaluated by `terraform console` (no configuration, no provider), with
    each `var.<name>` of `variables` replaced by its JSON value (jsondecode of a literal)."""
    for name, value in variables.items():
        expr = re.sub(rf"\bvar\.{name}\b", f"jsondecode({json.dumps(json.dumps(value))})", expr)
    with tempfile.TemporaryDirectory(prefix="tf-console-") as tmp:
        proc = subprocess.run([terraform_exe(), "console", "-no-color"], input=f"jsonencode({expr})\n", cwd=tmp,
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null"))
        if proc.returncode != 0:
            raise RuntimeError("terraform console failed: " + " ".join((proc.stderr + proc.stdout).split()))
        return json.loads(json.loads(proc.stdout.strip()))


def apply_module(source: Path, inputs: dict) -> dict:
    """A provider-less module evaluated by Terraform itself (init, then apply of a configuration
    that only calls it, every input as a variable of type any): its outputs as JSON values. A
    failed validation or precondition raises RuntimeError with Terraform's message on one line."""
    with tempfile.TemporaryDirectory(prefix="tf-module-") as tmp:
        tmp = Path(tmp)
        lines = [f'variable "{name}" {{\n  type = any\n}}\n' for name in inputs]
        lines.append(f'module "m" {{\n  source = {json.dumps(str(source))}\n')
        lines += [f"  {name} = var.{name}\n" for name in inputs]
        lines.append("}\n")
        lines.append('output "all" {\n  value = module.m\n}\n')
        (tmp / "main.tf").write_text("".join(lines))
        (tmp / "values.tfvars.json").write_text(json.dumps(inputs))
        env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null")
        for args in (["init", "-input=false", "-no-color"],
                     ["apply", "-auto-approve", "-input=false", "-no-color", "-var-file=values.tfvars.json"]):
            proc = subprocess.run([terraform_exe(), *args], cwd=tmp, capture_output=True, text=True, timeout=120, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"terraform {args[0]} failed: " + " ".join((proc.stderr + proc.stdout).split()))
        proc = subprocess.run([terraform_exe(), "output", "-json", "all"], cwd=tmp, capture_output=True, text=True,
                              timeout=60, env=env, check=True)
        return json.loads(proc.stdout)


# ------------------------------------------------------------------ a local AWS provider
PLUGIN_DIR = Path(os.environ.get("DEFTUNES_TF_PLUGIN_DIR", "/opt/tf-plugins"))


def local_aws_provider_versions() -> list[str]:
    """Versions of the AWS provider found under PLUGIN_DIR (terraform init cannot download one here)."""
    return sorted(p.name for p in PLUGIN_DIR.glob("registry.terraform.io/hashicorp/aws/*"))


def copy_for_local_provider(dst: Path) -> Path:
    """A copy of terraform/ (without tests and state) at dst/terraform, usable with the local
    provider. The only one on these machines may be an older major (5.x): the copy then relaxes
    the version constraint and maps the two 6.x-only constructs (aws_region's `region`
    attribute, the table optimizer's compaction_configuration block) to 5.x, the rest as it is.
    dst/pipelines links to the repository's, where the root reads each deploy.json."""
    copy = dst / "terraform"
    shutil.copytree(TF_DIR, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "tests", "*.tfstate*", "*.tfvars"))
    (dst / "pipelines").symlink_to(REPO_ROOT / "pipelines")
    if not any(v.startswith("6.") for v in local_aws_provider_versions()):
        for path in copy.rglob("*.tf"):
            text = path.read_text()
            text = re.sub(r'version\s*=\s*">= 6[^"]*"', 'version = ">= 5.0"', text)
            text = text.replace("data.aws_region.current.region", "data.aws_region.current.name")
            text = re.sub(r'    dynamic "compaction_configuration" \{.*?\n    \}\n', "", text, flags=re.S)
            path.write_text(text)
    return copy


# ------------------------------------------------------------------ the root, planned
PLAN_ACCOUNT = "123456789012"
PLAN_REGION = "us-east-1"


class _FakeSts(BaseHTTPRequestHandler):
    """GetCallerIdentity, the only call `terraform plan` makes (data.aws_caller_identity)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
            f"<Arn>arn:aws:iam::{PLAN_ACCOUNT}:user/plan</Arn><UserId>AIDAPLAN</UserId><Account>{PLAN_ACCOUNT}</Account>"
            "</GetCallerIdentityResult><ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def plan_root(tmp: Path, plans: dict[str, dict]) -> dict[str, dict]:
    """{plan name: plan JSON} of the whole root planned by Terraform with the local AWS provider
    (a copy of terraform/, tp.copy_for_local_provider), once per {name: tfvars}, with stand-in
    function zips and a stand-in STS endpoint for the account id (PLAN_ACCOUNT, PLAN_REGION).
    Skips the calling test when no provider is found locally."""
    import pytest

    if not local_aws_provider_versions():
        pytest.skip(f"no local AWS provider under {PLUGIN_DIR} (terraform init cannot download one offline)")
    copy = copy_for_local_provider(tmp)
    zips = tmp / "lambda"
    for crate in workspace_crates():
        (zips / crate).mkdir(parents=True)
        with zipfile.ZipFile(zips / crate / "bootstrap.zip", "w") as z:
            z.writestr("bootstrap", "not a function: planned only")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeSts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (copy / "provider_override.tf").write_text(
            'provider "aws" {\n'
            f'  region                      = "{PLAN_REGION}"\n'
            '  access_key                  = "plan"\n  secret_key                  = "plan"\n'
            "  skip_credentials_validation = true\n  skip_metadata_api_check     = true\n  skip_region_validation      = true\n"
            f'  endpoints {{\n    sts = "http://127.0.0.1:{server.server_address[1]}"\n  }}\n'
            "}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
        init = subprocess.run([terraform_exe(), "init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"],
                              cwd=copy, capture_output=True, text=True, timeout=300, env=env)
        assert init.returncode == 0, init.stderr + init.stdout
        out = {}
        for name, tfvars in plans.items():
            values = dict(tfvars, lambda_artifacts_dir=str(zips))
            (copy / f"{name}.tfvars.json").write_text(json.dumps(values))
            plan = subprocess.run([terraform_exe(), "plan", "-input=false", "-no-color", "-refresh=false", "-lock=false",
                                   f"-var-file={name}.tfvars.json", f"-out={name}.plan"],
                                  cwd=copy, capture_output=True, text=True, timeout=300, env=env)
            assert plan.returncode == 0, " ".join((plan.stderr + plan.stdout).split())[-3000:]
            show = subprocess.run([terraform_exe(), "show", "-json", f"{name}.plan"], cwd=copy, capture_output=True,
                                  text=True, timeout=120, env=env, check=True)
            out[name] = json.loads(show.stdout)
        return out
    finally:
        server.shutdown()


def plan_changes(plan: dict, rtype: str) -> dict[str, dict]:
    """The planned changes of the managed resources of one type, by address."""
    return {r["address"]: r["change"] for r in plan["resource_changes"] if r["type"] == rtype and r["mode"] == "managed"}
