"""The Terraform against the workspace: functions, their zips, env vars, IAM, and the
functions the state machine calls. Static: parses HCL with python-hcl2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tfparse as tp


def _error_types() -> tuple[set[str], set[str]]:
    """Every error type shared/src/error.rs reports, split by RETRYABLE_ERROR_TYPES, so the
    state machine's Retry lists cannot drift from what the functions return."""
    src = (tp.REPO_ROOT / "shared" / "src" / "error.rs").read_text()
    every = set(re.findall(r'=> "([A-Za-z]+)"', src))
    listed = re.search(r"RETRYABLE_ERROR_TYPES: &\[&str\] = &\[(.*?)\];", src, re.S)
    assert listed, "RETRYABLE_ERROR_TYPES not found in shared/src/error.rs"
    retryable = set(re.findall(r'"([A-Za-z]+)"', listed.group(1)))
    assert retryable <= every and len(every) > len(retryable)
    return retryable, every - retryable


RETRYABLE, NON_RETRYABLE = _error_types()
LAMBDA_SERVICE_RETRYABLE = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"}

# Allow statements whose only valid resource is "*" because the service offers no
# resource-level permission for these actions (IAM service authorization reference).
SERVICE_WIDE_ACTIONS = {
    "ec2:DescribeNetworkInterfaces": "VPC Lambda ENI management",
    "ec2:DescribeSubnets": "VPC Lambda ENI management",
    "ecr:GetAuthorizationToken": "ECR login of the dbt task",
    "redshift-data:DescribeStatement": "Data API statement polling (scoped by statement owner)",
    "redshift-data:GetStatementResult": "Data API statement results (scoped by statement owner)",
    "redshift-data:CancelStatement": "Data API statement cancel (scoped by statement owner)",
    "logs:CreateLogDelivery": "Step Functions vended logs",
    "logs:GetLogDelivery": "Step Functions vended logs",
    "logs:UpdateLogDelivery": "Step Functions vended logs",
    "logs:DeleteLogDelivery": "Step Functions vended logs",
    "logs:ListLogDeliveries": "Step Functions vended logs",
    "logs:PutResourcePolicy": "Step Functions vended logs",
    "logs:DescribeResourcePolicies": "Step Functions vended logs",
    "logs:DescribeLogGroups": "Step Functions vended logs",
}


# Interpolations that end with "/" by construction (data_lake's zone_prefixes output).
PREFIX_INTERPOLATION = re.compile(r'\$\{(local\.zones\["[a-z_]+"\]|var\.[a-z_]*prefix)\}$')


def all_tf_dirs() -> list[Path]:
    return [tp.TF_DIR] + sorted(p for p in tp.MODULES_DIR.iterdir() if p.is_dir())


# ------------------------------------------------------------------ functions and zips
def test_every_crate_has_exactly_one_lambda_with_its_cargo_lambda_zip():
    crates = tp.workspace_crates()
    assert crates, "no functions/*/Cargo.toml found: is the test run from the repository?"
    modules = tp.lambda_modules()

    by_crate: dict[str, list[str]] = {}
    for name, body in modules.items():
        crate = tp.crate_of_module(body)
        assert crate, (
            f'module "{name}": package_path {tp.unquote(body.get("package_path"))!r} is not '
            '"${local.lambda_artifacts_dir}/<crate>/bootstrap.zip"'
        )
        by_crate.setdefault(crate, []).append(name)

    for crate in crates:
        assert len(by_crate.get(crate, [])) == 1, (
            f"functions/{crate} must have exactly one Lambda module, found {by_crate.get(crate, [])}"
        )

    strays = {crate: names for crate, names in by_crate.items() if crate not in crates}
    assert not strays, f"Lambda module(s) deploy crates that are not under functions/: {strays}"


def test_no_lambda_function_outside_the_lambda_module():
    for directory in all_tf_dirs():
        if directory.name == "lambda_function":
            continue
        assert not tp.resources(directory, "aws_lambda_function"), (
            f"{directory}: declare functions through modules/lambda_function"
        )


def test_artifacts_dir_defaults_to_cargo_lambda_output():
    expr = tp.locals_of(tp.TF_DIR)["lambda_artifacts_dir"]
    m = re.fullmatch(r'\$\{coalesce\(var\.lambda_artifacts_dir, "\$\{path\.root\}/([^"]+)"\)\}', expr)
    assert m, f"unexpected local.lambda_artifacts_dir: {expr}"
    assert (tp.TF_DIR / m.group(1)).resolve() == (tp.REPO_ROOT / "target" / "lambda").resolve()
    assert tp.variable_default(tp.TF_DIR, "lambda_artifacts_dir") is None


def test_lambda_module_builds_rust_functions_as_agreed():
    fn = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_lambda_function")["this"]
    assert tp.unquote(fn["runtime"]) == "provided.al2023"
    assert [tp.unquote(a) for a in fn["architectures"]] == ["arm64"]
    assert tp.unquote(fn["handler"]) == "bootstrap"
    assert fn["filename"] == "${var.package_path}"
    assert fn["source_code_hash"] == "${filebase64sha256(var.package_path)}"
    logging = fn["logging_config"][0]
    assert tp.unquote(logging["log_format"]) == "JSON"
    assert logging["log_group"] == "${aws_cloudwatch_log_group.this.name}"
    group = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_cloudwatch_log_group")["this"]
    assert group["retention_in_days"] == "${var.log_retention_days}"


# ------------------------------------------------------------------ env vars vs README
def readme_env_table(readme: Path) -> dict[str, bool]:
    """{NAME: required} from the `| Name | Required | Default | Notes |` table."""
    rows = [line.strip() for line in readme.read_text().splitlines() if line.strip().startswith("|")]
    table: dict[str, bool] = {}
    header = None
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        lowered = [c.lower().strip("* `") for c in cells]
        if lowered and lowered[0] == "name" and "required" in lowered:
            header = lowered
            continue
        if header is None or set(row.replace("|", "").strip()) <= set("-: "):
            continue
        if len(cells) < len(header):
            header = None
            continue
        m = re.search(r"[A-Z][A-Z0-9_]+", cells[0])
        if not m:
            continue
        required = cells[header.index("required")].strip("* `").lower()
        table[m.group(0)] = required.startswith(("yes", "required", "true", "✓", "✔")) or required == "y"
    return table


def lambda_env_cases():
    for name, body in sorted(tp.lambda_modules().items()):
        yield pytest.param(tp.crate_of_module(body), body, id=tp.crate_of_module(body) or name)


@pytest.mark.parametrize("crate,body", list(lambda_env_cases()))
def test_env_vars_match_function_readme(crate, body):
    readme = tp.REPO_ROOT / "functions" / crate / "README.md"
    if not readme.exists():
        pytest.skip(f"functions/{crate}/README.md does not exist yet: env vars cannot be checked")
    documented = readme_env_table(readme)
    assert documented, f"{readme}: no `| Name | Required | Default | Notes |` table found"
    env = body.get("environment", {})
    assert isinstance(env, dict), f"{crate}: environment must be a literal map, got {env!r}"
    set_by_tf = set(env)
    missing = sorted(n for n, req in documented.items() if req and n not in set_by_tf)
    assert not missing, f"{crate}: required env vars not set by Terraform: {missing}"
    undocumented = sorted(set_by_tf - set(documented))
    assert not undocumented, f"{crate}: Terraform sets env vars its README does not document: {undocumented}"


def test_no_plain_database_password_in_aws():
    for name, body in tp.lambda_modules().items():
        assert "PG_PASSWORD" not in body.get("environment", {}), f"{name}: use PG_SECRET_ARN in AWS"


def test_readme_table_parser():
    import tempfile

    text = (
        "# x\n\n| Name | Required | Default | Notes |\n|---|---|---|---|\n"
        "| `LAKE_URI` | yes | | s3://bucket |\n| `SPOOL_DIR` | no | `/tmp` | |\n\nafter\n"
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "README.md"
        p.write_text(text)
        assert readme_env_table(p) == {"LAKE_URI": True, "SPOOL_DIR": False}


# ------------------------------------------------------------------ IAM
def iter_statements(node, path=""):
    """Every dict that looks like an IAM statement (actions + resources), anywhere."""
    if isinstance(node, dict):
        if "actions" in node and "resources" in node:
            yield path, node
        for k, v in node.items():
            yield from iter_statements(v, f"{path}/{tp.unquote(k)}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_statements(v, f"{path}[{i}]")


def literal_list(value):
    return [tp.unquote(v) for v in value] if isinstance(value, list) else None


def test_iam_allow_statements_are_least_privilege():
    checked = 0
    problems = []
    for directory in all_tf_dirs():
        for fname, parsed in tp.parse_dir(directory).items():
            for where, st in iter_statements(parsed, f"{directory.name}/{fname}"):
                if tp.unquote(st.get("effect", '"Allow"')) == "Deny":
                    continue
                actions, resources = literal_list(st["actions"]), literal_list(st["resources"])
                if actions is None or resources is None:
                    continue  # dynamic pass-through (statement.value.*): checked where defined
                checked += 1
                sid = tp.unquote(st.get("sid", "?"))
                for a in actions:
                    if "*" in a:
                        problems.append(f"{where} {sid}: wildcard action {a}")
                for r in resources:
                    if r == "*":
                        extra = [a for a in actions if a not in SERVICE_WIDE_ACTIONS]
                        if extra:
                            problems.append(f"{where} {sid}: resource '*' for actions with resource-level support: {extra}")
                    elif "*" in r:
                        head = r[: r.index("*")]
                        below_prefix = head.endswith(("/", ":")) or PREFIX_INTERPOLATION.search(head)
                        if not below_prefix or not ("/" in head or "${" in head):
                            problems.append(f"{where} {sid}: resource wildcard not below a prefix: {r}")
                        if r.count("*") > 1:
                            problems.append(f"{where} {sid}: several wildcards in {r}")
    assert checked >= 25, f"only {checked} statements found: has the layout changed?"
    assert not problems, "\n".join(problems)


def test_no_wildcard_action_anywhere_but_the_tls_deny():
    hits = []
    for path in sorted(tp.TF_DIR.rglob("*.tf")):
        for m in re.finditer(r'"([a-z0-9-]+:[A-Za-z0-9]*\*[A-Za-z0-9*]*)"', path.read_text()):
            hits.append((path.relative_to(tp.TF_DIR).as_posix(), m.group(1)))
    assert hits == [("modules/data_lake/main.tf", "s3:*")], hits


def test_every_function_role_is_its_own():
    body = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_iam_role")["this"]
    assert body["name"] == "${var.function_name}"


# ------------------------------------------------------------------ state machine wiring
def terraform_function_arns() -> dict[str, str]:
    """{crate: fake ARN} of every Lambda in the Terraform, named as Terraform names them."""
    return {
        tp.crate_of_module(body): f"arn:aws:lambda:us-east-1:123456789012:function:{tp.function_name_of(body)}"
        for body in tp.lambda_modules().values()
    }


def fake_definition_values(function_arns: dict[str, str]) -> dict:
    """Values for local.definition_vars: function ARNs as Terraform would pass them, the rest
    fake but well-formed. Shared with test_state_machine.py."""
    values = {}
    for name, expr in tp.definition_vars().items():
        m = tp.FUNCTION_ARN_EXPR.match(expr)
        if m:
            values[name] = function_arns[m.group(1)]
    fake = {
        "ecs_cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/deftunes",
        "dbt_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/deftunes-dbt:1",
        "dbt_container_name": "dbt",
        "dbt_subnet_ids": ["subnet-0a", "subnet-0b", "subnet-0c"],
        "dbt_security_group_ids": ["sg-0dbt"],
        "dbt_assign_public_ip": "DISABLED",
    }
    for name in tp.definition_vars():
        values.setdefault(name, fake.get(name))
    missing = [k for k, v in values.items() if v is None]
    assert not missing, f"no test value for definition_vars {missing}: extend fake_definition_values"
    return values


def test_definition_vars_are_exactly_the_template_variables():
    assert set(tp.definition_vars()) == tp.template_variables()
    orchestration = tp.resources(tp.MODULES_DIR / "orchestration", "aws_sfn_state_machine")["pipeline"]
    assert orchestration["definition"] == (
        '${templatefile("${path.module}/state_machine.asl.json.tftpl", local.definition_vars)}'
    )


def test_state_machine_calls_only_functions_that_exist_in_terraform():
    modules = tp.lambda_modules()
    crate_by_module = {name: tp.crate_of_module(body) for name, body in modules.items()}
    call = tp.blocks(tp.TF_DIR, "module")["orchestration"]
    passed = call["function_arns"]
    for key, expr in passed.items():
        m = re.fullmatch(r"\$\{module\.([a-z0-9_]+)\.function_arn\}", expr)
        assert m, f"function_arns[{key}] must be a lambda module's function_arn, got {expr}"
        assert crate_by_module.get(m.group(1)) == tp.unquote(key), (
            f"function_arns[{key}] points at module {m.group(1)}, which deploys {crate_by_module.get(m.group(1))}"
        )
    for name, expr in tp.definition_vars().items():
        m = tp.FUNCTION_ARN_EXPR.match(expr)
        if m:
            assert m.group(1) in {tp.unquote(k) for k in passed}, f"{name} uses function_arns[{m.group(1)}], not passed"

    arns = terraform_function_arns()
    rendered = tp.render_template(fake_definition_values(arns))
    definition = json.loads(rendered)
    used = set(re.findall(r"arn:aws:lambda:[^\"]+", rendered))
    assert used, "the state machine calls no Lambda"
    assert used <= set(arns.values()), f"unknown functions in the state machine: {used - set(arns.values())}"
    assert definition["StartAt"] in definition["States"]


def iter_states(states: dict):
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from iter_states(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from iter_states(processor["States"])


def test_lambda_tasks_retry_exactly_the_retryable_errors():
    definition = json.loads(tp.render_template(fake_definition_values(terraform_function_arns())))
    lambda_tasks = 0
    for name, state in iter_states(definition["States"]):
        if state.get("Type") != "Task" or state.get("Resource") != "arn:aws:states:::lambda:invoke":
            continue
        lambda_tasks += 1
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert RETRYABLE | LAMBDA_SERVICE_RETRYABLE <= retried, f"{name}: missing retries {sorted((RETRYABLE | LAMBDA_SERVICE_RETRYABLE) - retried)}"
        assert not retried & (NON_RETRYABLE | {"States.ALL", "States.TaskFailed"}), f"{name} retries {sorted(retried & NON_RETRYABLE)}"
        for r in state["Retry"]:
            assert r.get("BackoffRate", 1) > 1 and r.get("MaxAttempts", 3) >= 2, f"{name}: retry without backoff"
    assert lambda_tasks == 7  # 3 extracts, 3 transforms, redshift setup

def test_failures_end_in_fail_states_that_keep_the_error():
    definition = json.loads(tp.render_template(fake_definition_values(terraform_function_arns())))
    top = definition["States"]
    fails = {n for n, s in top.items() if s["Type"] == "Fail"}
    assert {"Pipeline failed", "Data quality failed"} <= fails
    for n in fails:
        assert top[n].get("ErrorPath") == "$.error.Error" and top[n].get("CausePath") == "$.error.Cause"
    for name in ("Process windows", "Set up Redshift", "Run dbt build"):
        catches = top[name]["Catch"]
        assert catches[-1]["ErrorEquals"] == ["States.ALL"] and catches[-1]["Next"] in fails
        assert all(c["ResultPath"] == "$.error" for c in catches)
