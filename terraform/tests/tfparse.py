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
from functools import lru_cache
from pathlib import Path

import hcl2

TF_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TF_DIR.parent
MODULES_DIR = TF_DIR / "modules"
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


LAMBDA_MODULE_SOURCE = "./modules/lambda_function"


def lambda_modules() -> dict[str, dict]:
    """Root module calls of modules/lambda_function, by module name."""
    return {
        name: body
        for name, body in blocks(TF_DIR, "module").items()
        if unquote(body.get("source")) == LAMBDA_MODULE_SOURCE
    }


ZIP_PATH = re.compile(r"^\$\{local\.lambda_artifacts_dir\}/([a-z0-9_-]+)/bootstrap\.zip$")


def crate_of_module(body: dict) -> str | None:
    """Crate name from the module's package_path, or None if the path is not the cargo-lambda one."""
    m = ZIP_PATH.match(unquote(body.get("package_path", "")))
    return m.group(1) if m else None


def function_name_of(body: dict) -> str:
    """function_name with var.project resolved to its default."""
    project = variable_default(TF_DIR, "project")
    return unquote(body["function_name"]).replace("${var.project}", project)


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
    """pipelines/<pipeline>/deploy.json, as the root module reads it."""
    return json.loads((REPO_ROOT / "pipelines" / pipeline / "deploy.json").read_text())


def definition_vars() -> dict[str, str]:
    """The orchestration module's local.definition_vars: {template variable: HCL expression}."""
    return locals_of(MODULES_DIR / "orchestration")["definition_vars"]


FUNCTION_ARN_EXPR = re.compile(r'^\$\{var\.function_arns\["([a-z0-9_-]+)"\]\}$')
