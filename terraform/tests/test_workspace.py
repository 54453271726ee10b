"""The Terraform against the workspace: functions, their zips, env vars, IAM, and the
functions the state machine calls. Static: parses HCL with python-hcl2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rust_env
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
    "redshift-data:CancelStatement": "Data API statement cancel (scoped by statement owner)",
    "redshift-data:GetStatementResult": "Data API statement results (scoped by statement owner)",
    "logs:CreateLogDelivery": "Step Functions vended logs",
    "logs:GetLogDelivery": "Step Functions vended logs",
    "logs:UpdateLogDelivery": "Step Functions vended logs",
    "logs:DeleteLogDelivery": "Step Functions vended logs",
    "logs:ListLogDeliveries": "Step Functions vended logs",
    "logs:PutResourcePolicy": "Step Functions vended logs",
    "logs:DescribeResourcePolicies": "Step Functions vended logs",
    "logs:DescribeLogGroups": "Step Functions vended logs",
    "xray:PutTraceSegments": "X-Ray tracing (xray_tracing) of the functions and state machines",
    "xray:PutTelemetryRecords": "X-Ray tracing (xray_tracing) of the functions and state machines",
    "xray:GetSamplingRules": "X-Ray tracing (xray_tracing) of the state machines",
    "xray:GetSamplingTargets": "X-Ray tracing (xray_tracing) of the state machines",
}


def key_policy_documents() -> set[tuple[Path, str]]:
    """(module directory, name) of every aws_iam_policy_document used as a KMS key's policy. In a
    key policy "*" is the key itself (a key policy cannot name its own key), so it is the only
    valid resource there."""
    found = set()
    for directory in all_tf_dirs():
        for body in tp.resources(directory, "aws_kms_key").values():
            m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", str(body.get("policy", "")))
            assert m, f"{directory.name}: a KMS key's policy must be an aws_iam_policy_document (checked here), got {body.get('policy')!r}"
            found.add((directory, m.group(1)))
    return found


def in_key_policy(key: str, where: str) -> bool:
    """Whether the statement at `where` (iam_statements) belongs to a key policy document."""
    return any(key.startswith(f"{d.name}/") and f"/aws_iam_policy_document/{name}/" in where for d, name in key_policy_documents())


# Interpolations that end with "/" by construction (data_lake's zone_prefixes output).
# A zone, a prefix variable, or a loop over landing prefixes (deploy.json's end with "/",
# which modules/pipeline_settings checks).
PREFIX_INTERPOLATION = re.compile(r'\$\{(local\.zones\["[a-z_]+"\]|var\.(settings\.)?[a-z_]*prefix|landing_prefix)\}$')


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


# ------------------------------------------------------------------ env vars vs README and code
# Set by the Lambda runtime in every function (not documented per function).
LAMBDA_RUNTIME_ENV = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}

# README rows whose "Required" cell is a condition the generic rules cannot read: (crate, name)
# -> (needed(env set by Terraform) -> bool, why).
CONDITIONAL_ROWS = {
    ("redshift-setup", "REDSHIFT_SECRET_ARN"): (
        lambda env: "REDSHIFT_CLUSTER_ID" in env,
        "required with a provisioned cluster (REDSHIFT_CLUSTER_ID) only; Terraform deploys Serverless",
    ),
}

ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,}")
WHEN_EQUALS = re.compile(r"^when\s+`?([A-Z][A-Z0-9_]+)\s*=\s*([^`\s]+)`?$")


def readme_env_table(readme: Path) -> dict[str, dict]:
    """{NAME: {"required": "yes" | "no" | "one of" | <condition text>, "default": str}} from the
    `| Name | Required | Default | Notes |` table. A row may name several variables."""
    rows = [line.strip() for line in readme.read_text().splitlines() if line.strip().startswith("|")]
    table: dict[str, dict] = {}
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
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]) or ENV_NAME.findall(cells[0])[:1]
        raw = cells[header.index("required")].strip("* ")
        word = raw.strip("`").lower()
        if word in ("yes", "required", "true", "y", "✓", "✔"):
            required = "yes"
        elif word in ("no", "false", "n", "", "-", "optional"):
            required = "no"
        elif word == "one of":
            required = "one of"
        else:
            required = raw
        default = cells[header.index("default")].strip(" `") if "default" in header else ""
        for name in names:
            table[name] = {"required": required, "default": default}
    return table


def lambda_env_cases():
    for name, body in sorted(tp.lambda_modules().items()):
        yield pytest.param(tp.crate_of_module(body), body, id=tp.crate_of_module(body) or name)


def env_problems(crate: str, documented: dict[str, dict], read: set[str], env: dict[str, str]) -> list[str]:
    """What is wrong with the env vars Terraform sets (env) for a function that reads `read` and
    documents `documented`. Rules: every name the code reads is set by Terraform, or documented
    as not required; "one of" rows need at least one of their group set; conditional rows
    ("when `X=v`", or CONDITIONAL_ROWS) are needed when their condition holds; Terraform sets
    only documented names."""
    problems = []
    set_by_tf = set(env)
    for name in sorted(read - LAMBDA_RUNTIME_ENV):
        if name not in documented:
            problems.append(f"{crate}: the code reads {name}, which its README does not document")
    one_of = sorted(n for n, row in documented.items() if row["required"] == "one of")
    if one_of and not set_by_tf & set(one_of):
        problems.append(f"{crate}: none of the one-of group {one_of} is set by Terraform")
    for name, row in sorted(documented.items()):
        req = row["required"]
        if name in set_by_tf or req in ("no", "one of"):
            continue
        if req == "yes":
            problems.append(f"{crate}: required env var {name} is not set by Terraform")
            continue
        m = WHEN_EQUALS.match(req)
        if m:
            other, value = m.groups()
            actual = tp.unquote(env.get(other)) if other in env else documented.get(other, {}).get("default")
            if actual == value:
                problems.append(f"{crate}: {name} is required {req!r}, which holds, and is not set by Terraform")
            continue
        rule = CONDITIONAL_ROWS.get((crate, name))
        if rule is None:
            problems.append(f"{crate}: README row {name} is required {req!r}: add it to CONDITIONAL_ROWS with a reason")
        elif rule[0](set_by_tf):
            problems.append(f"{crate}: {name} is needed here ({rule[1]}) and not set by Terraform")
    undocumented = sorted(set_by_tf - set(documented))
    if undocumented:
        problems.append(f"{crate}: Terraform sets env vars its README does not document: {undocumented}")
    return problems


@pytest.mark.parametrize("crate,body", list(lambda_env_cases()))
def test_env_vars_match_function_readme_and_code(crate, body):
    crate_dir = tp.workspace_crates().get(crate)
    assert crate_dir, f"{crate}: no functions/<dir> crate builds it"
    readme = crate_dir / "README.md"
    assert readme.exists(), f"{readme.relative_to(tp.REPO_ROOT)} is missing: it documents the function's env vars"
    documented = readme_env_table(readme)
    assert documented, f"{readme}: no `| Name | Required | Default | Notes |` table found"
    env = tp.module_environment(body)
    read, reached = rust_env.env_vars_read(tp.REPO_ROOT, crate_dir)
    assert reached and "main" in reached, f"{crate}: no start-up code found from src/main.rs"
    problems = env_problems(crate, documented, read, env)
    assert not problems, "\n".join(problems)


def test_env_reader_sees_every_variable_the_functions_read():
    """Every env name read anywhere in shared/src and functions/*/src is reached from some
    function's main.rs: the call graph misses nothing the crates read."""
    reached = set()
    for crate_dir in tp.workspace_crates().values():
        reached |= rust_env.env_vars_read(tp.REPO_ROOT, crate_dir)[0]
    files = sorted((tp.REPO_ROOT / "shared" / "src").rglob("*.rs")) + sorted((tp.REPO_ROOT / "functions").glob("*/src/**/*.rs"))
    everywhere = rust_env.all_env_reads(files)
    assert {"LAKE_URI", "API_BASE_URL", "PG_HOST", "REDSHIFT_WORKGROUP", "WINDOW_TIMEZONE"} <= everywhere
    assert everywhere - reached == set(), f"read in the sources but by no function: {sorted(everywhere - reached)}"


def test_env_reader_parses_the_config_idioms():
    src = (
        "impl Cfg {\n"
        "    pub fn from_env(env: &dyn Env) -> Result<Self> {\n"
        '        let a = required(env, "A_REQ")?; // env.var("IN_COMMENT")\n'
        '        let b = parse_or::<u32>(env, "B_NUM", 5)?;\n'
        '        let c = env.var("C_OPT");\n'
        "        helper(env)\n"
        "    }\n"
        "}\n\n"
        "fn helper(env: &dyn Env) -> Option<String> {\n"
        '    identifier(env, "D_IDENT", "x").ok().or_else(|| std::env::var("E_STD").ok())\n'
        "}\n\n"
        "fn unused(env: &dyn Env) {\n"
        '    env.var("NOT_REACHED");\n'
        "}\n\n"
        "#[cfg(test)]\nmod tests {\n"
        '    fn t() { required(env, "IN_TESTS"); }\n'
        "}\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "shared" / "src").mkdir(parents=True)
        (root / "shared" / "src" / "config.rs").write_text(src)
        (root / "functions" / "f" / "src").mkdir(parents=True)
        (root / "functions" / "f" / "src" / "main.rs").write_text(
            "async fn main() -> Result<(), Error> {\n    let cfg = Cfg::from_env(&ProcessEnv)?;\n}\n"
        )
        names, _ = rust_env.env_vars_read(root, root / "functions" / "f")
    assert names == {"A_REQ", "B_NUM", "C_OPT", "D_IDENT", "E_STD"}


def test_readme_table_parser_and_rules():
    import tempfile

    text = (
        "# x\n\n| Name | Required | Default | Notes |\n|---|---|---|---|\n"
        "| `LAKE_URI` | yes | | s3://bucket |\n| `SPOOL_DIR` | no | `/tmp` | |\n"
        "| `WORKGROUP` | one of | | |\n| `CLUSTER` | one of | | |\n"
        "| `CATALOG` | no | `sql` | |\n| `CATALOG_URI` | when `CATALOG=sql` | | |\n"
        "| `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3` | no | | |\n\nafter\n"
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "README.md"
        p.write_text(text)
        table = readme_env_table(p)
    assert {n: r["required"] for n, r in table.items()} == {
        "LAKE_URI": "yes", "SPOOL_DIR": "no", "WORKGROUP": "one of", "CLUSTER": "one of", "CATALOG": "no",
        "CATALOG_URI": "when `CATALOG=sql`", "AWS_ENDPOINT_URL": "no", "AWS_ENDPOINT_URL_S3": "no",
    }
    assert table["SPOOL_DIR"]["default"] == "/tmp"
    ok = {"LAKE_URI": "x", "WORKGROUP": "w", "CATALOG": '"glue"'}
    assert env_problems("t", table, {"LAKE_URI", "SPOOL_DIR", "CATALOG_URI"}, ok) == []
    # A one-of group with none set, a required name missing, an undocumented read and set.
    problems = env_problems("t", table, {"LAKE_URI", "UNDOCUMENTED"}, {"X_EXTRA": "1"})
    assert any("one-of group" in p for p in problems)
    assert any("required env var LAKE_URI" in p for p in problems)
    assert any("reads UNDOCUMENTED" in p for p in problems)
    assert any("X_EXTRA" in p for p in problems)
    # The condition of CATALOG_URI holds with CATALOG unset (default sql).
    assert any("CATALOG_URI" in p for p in env_problems("t", table, set(), {"LAKE_URI": "x", "WORKGROUP": "w"}))


def test_extracts_follow_the_schedule_time_zone():
    """The Scheduler passes scheduled_time in UTC while the schedule runs in schedule_timezone:
    the functions take the previous day/month in that zone (WINDOW_TIMEZONE)."""
    modules = tp.blocks(tp.PIPELINE_DIR, "module")
    for name in ("api_extract", "songs_extract"):
        assert modules[name]["environment"].get("WINDOW_TIMEZONE") == "${var.schedule_timezone}", name
    assert modules["orchestration"]["schedule_timezone"] == "${var.schedule_timezone}"
    assert tp.blocks(tp.TF_DIR, "module")["pipeline"]["schedule_timezone"] == "${var.schedule_timezone}"
    for directory in (tp.TF_DIR, tp.PIPELINE_DIR, tp.MODULES_DIR / "orchestration"):
        variable = tp.blocks(directory, "variable")["schedule_timezone"]
        assert tp.unquote(variable["default"]) == "UTC"
        (validation,) = variable["validation"]
        pattern = re.search(r'regex\("([^"]+)", var\.schedule_timezone\)', validation["condition"]).group(1)
        for zone in ("UTC", "Asia/Tokyo", "America/Argentina/Buenos_Aires", "Etc/GMT+9", "America/Port-au-Prince"):
            assert re.fullmatch(pattern, zone), zone
        for zone in ("", "Asia Tokyo", "/Tokyo", "Asia/", "../etc"):
            assert not re.fullmatch(pattern, zone), zone


def test_no_plain_database_password_in_aws():
    for name, body in tp.lambda_modules().items():
        env = tp.module_environment(body)
        assert "PG_PASSWORD" not in env, f"{name}: use PG_SECRET_ARN in AWS"
        assert "MYSQL_PASSWORD" not in env, f"{name}: use MYSQL_SECRET_ARN in AWS"


# ------------------------------------------------------------------ IAM
class Unresolvable(Exception):
    """An actions/resources expression whose elements the test cannot list."""


# Expressions the IAM test cannot expand, each with why it is safe. Keyed by (module dir/file,
# expression); an entry nothing uses any more fails the test, so the list stays exact.
UNRESOLVED_ALLOWED = {

    ("orchestration/iam.tf", "values(var.function_arns)"):
        "the pipeline functions' ARNs, passed by the root as module.<fn>.function_arn: exact ARNs",
    ("orchestration/iam.tf", "var.dbt_role_arns"):
        "the dbt task's execution and task role ARNs (module serving's dbt_role_arns output): exact ARNs",
    ("lambda_function/iam.tf", "statement.value.actions"):
        "policy_statements pass-through: checked where modules/pipeline defines them (its iam.tf locals)",
    ("lambda_function/iam.tf", "statement.value.resources"):
        "policy_statements pass-through: checked where modules/pipeline defines them (its iam.tf locals)",
    ("pipeline/iam.tf", "own_statement_actions"):
        "OwnStatements' actions in local.redshift_data_statements, a literal list per function: evaluated by Terraform "
        "and checked in test_redshift_roles_grant_exactly_the_data_api_calls_they_make (each one a SERVICE_WIDE_ACTIONS one)",
}

SIMPLE_REF = re.compile(r'^[A-Za-z_][\w-]*(?:\.[\w-]+|\[[^\[\]]+\])*$')


def split_top(text: str, sep: str = ",") -> list[str]:
    """Splits an HCL expression at top-level separators (outside brackets and strings)."""
    parts, depth, in_str, cur, i = [], 0, False, [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and in_str:
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"' and depth == 0:
            in_str = not in_str
        elif not in_str and c in "([{":
            depth += 1
        elif not in_str and c in ")]}":
            depth -= 1
        if c == sep and depth == 0 and not in_str:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced: {text[start:][:60]}")


def _element(text: str, unresolved: list[str]) -> list[str]:
    """One list element as IAM sees it: a string (with its interpolations) or ${ref}."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return [text[1:-1]]
    if SIMPLE_REF.match(text):
        return ["${" + text + "}"]
    unresolved.append(text)
    return []


def resolve_expr(text: str, unresolved: list[str]) -> list[str]:
    """Elements of an HCL list expression: list literals, concat(), for expressions. What cannot
    be listed (a reference to a whole list such as var.x or values(...), a filtered for) goes
    to `unresolved`; the rest is still returned, so each resolvable part is checked."""
    text = text.strip()
    if text.startswith("concat(") and _closing(text, len("concat")) == len(text) - 1:
        return [e for arg in split_top(text[len("concat("):-1]) for e in resolve_expr(arg, unresolved)]
    if text.startswith("[") and _closing(text, 0) == len(text) - 1:
        inner = text[1:-1].strip()
        if re.match(r"^for\s+\w+(?:\s*,\s*\w+)?\s+in\s+", inner):
            body = split_top(inner, ":")
            if len(body) != 2 or re.search(r"\sif\s", body[1]):
                unresolved.append(text)
                return []
            return _element(body[1], unresolved)
        return [e for item in split_top(inner) for e in _element(item, unresolved)]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return [text[1:-1]]
    unresolved.append(text)
    return []


def resolve_list(value, unresolved: list[str]) -> list[str]:
    """actions/resources as python-hcl2 gives them: a list, "${expression}", or the text of an
    expression (statements_in_expression)."""
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, str) and v.startswith("${") and v.endswith("}") and _closing(v, 1) == len(v) - 1:
                inner = v[2:-1]
                out.extend(["${" + inner + "}"] if SIMPLE_REF.match(inner) else resolve_expr(inner, unresolved))
            else:
                out.append(tp.unquote(v))
        return out
    if isinstance(value, str) and value.startswith("${") and value.endswith("}") and _closing(value, 1) == len(value) - 1:
        return resolve_expr(value[2:-1], unresolved)
    if isinstance(value, str):
        return resolve_expr(value, unresolved)
    unresolved.append(repr(value))
    return []


def statements_in_expression(text: str):
    """Statement objects ({sid = .., actions = [..], resources = [..]}) written inside an HCL
    expression, e.g. `var.key == null ? [] : [{...}]`, which python-hcl2 keeps as a string."""
    for m in re.finditer(r"\bactions\s*=", text):
        depth, i = 0, m.start()
        while i >= 0:
            if text[i] in ")]}":
                depth += 1
            elif text[i] in "([{":
                if depth == 0:
                    break
                depth -= 1
            i -= 1
        if i < 0 or text[i] != "{":
            raise Unresolvable(text)
        obj = text[i + 1:_closing(text, i)]
        fields = {}
        for part in split_top(obj):
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip()
        yield fields


def iter_statements(node, path=""):
    """Every dict that looks like an IAM statement (it has actions), anywhere, including the
    statement objects written inside expressions."""
    if isinstance(node, dict):
        if "actions" in node:
            yield path, node
        for k, v in node.items():
            yield from iter_statements(v, f"{path}/{tp.unquote(k)}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_statements(v, f"{path}[{i}]")
    elif isinstance(node, str) and re.search(r"\bactions\s*=", node):
        for i, fields in enumerate(statements_in_expression(node)):
            yield f"{path}<expr>[{i}]", fields


def iam_statements():
    """(file key "dir/file.tf", where, statement) of every IAM statement in the Terraform."""
    for directory in all_tf_dirs():
        for fname, parsed in tp.parse_dir(directory).items():
            # Variable blocks declare the statement type (policy_statements), not statements.
            parsed = {k: v for k, v in parsed.items() if k != "variable"}
            for where, st in iter_statements(parsed, f"{directory.name}/{fname}"):
                yield f"{directory.name}/{fname}", where, st


def test_iam_allow_statements_are_least_privilege():
    checked = 0
    problems = []
    used_allowances = set()

    def elements(key, where, sid, value):
        unresolved: list[str] = []
        listed = resolve_list(value, unresolved)
        for expr in unresolved:
            if (key, expr) in UNRESOLVED_ALLOWED:
                used_allowances.add((key, expr))
            else:
                problems.append(f"{where} {sid}: cannot resolve {expr!r}: make it a literal list, or add it to "
                                "UNRESOLVED_ALLOWED with the reason it is safe")
        return listed

    for key, where, st in iam_statements():
        if tp.unquote(st.get("effect", '"Allow"')) == "Deny":
            continue
        sid = tp.unquote(st.get("sid", "?"))
        if "resources" not in st:
            # A trust policy (or resource policy) statement: who, not what.
            if "principals" not in st:
                problems.append(f"{where} {sid}: statement without resources or principals")
            continue
        checked += 1
        actions = elements(key, where, sid, st["actions"])
        resources = elements(key, where, sid, st["resources"])
        for a in actions:
            if "*" in a:
                problems.append(f"{where} {sid}: wildcard action {a}")
        for r in resources:
            if r == "*" and in_key_policy(key, where):
                # A key policy: "*" is the key. Only KMS actions, granted to named principals.
                extra = [a for a in actions if not a.startswith("kms:")]
                if extra or "principals" not in st:
                    problems.append(f"{where} {sid}: key policy statement with non-KMS actions {extra} or without principals")
            elif r == "*":
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
    stale = sorted(set(UNRESOLVED_ALLOWED) - used_allowances)
    assert not stale, f"UNRESOLVED_ALLOWED entries nothing uses: {stale}"
    assert not problems, "\n".join(problems)


def test_iam_test_sees_every_statement():
    """Each `actions =` written in the Terraform is a statement the IAM test checks."""
    seen: dict[str, int] = {}
    for key, _, _ in iam_statements():
        seen[key] = seen.get(key, 0) + 1
    written = {}
    for path in sorted(tp.TF_DIR.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        code = re.sub(r'(?ms)^variable "[^"]+" \{.*?^\}', "", code)
        n = len(re.findall(r"\bactions\s*=", code))
        if n:
            rel = path.relative_to(tp.TF_DIR)
            written[f"{tp.TF_DIR.name if len(rel.parts) == 1 else rel.parts[-2]}/{rel.name}"] = n
    assert seen == written


def test_iam_resolver_expands_expressions():
    def resolved(value):
        unresolved: list[str] = []
        return resolve_list(value, unresolved), unresolved

    assert resolved('${concat(["${local.p}:network-interface/*"], [for s in var.ids : "${local.p}:subnet/${s}"])}') == (
        ["${local.p}:network-interface/*", "${local.p}:subnet/${s}"], [],
    )
    assert resolved(["${var.a}", '"arn:x/${var.b}/*"']) == (["${var.a}", "arn:x/${var.b}/*"], [])
    assert resolved("[var.key_arn]") == (["${var.key_arn}"], [])
    # The resolvable part of a concat is still listed (and checked); the rest is reported.
    assert resolved('${concat(values(var.m), [for a in values(var.m) : "${a}:*"])}') == (["${a}:*"], ["values(var.m)"])
    for expr in ("${var.list}", '${concat(var.a, ["x"])}', '${[for s in var.ids : s if s != ""]}'):
        listed, unresolved = resolved(expr)
        assert unresolved, expr
    (st,) = statements_in_expression(
        'var.k == null ? [] : [{sid = "K", actions = ["kms:Decrypt"], resources = [var.k], conditions = []}]'
    )
    assert resolved(st["actions"]) == (["kms:Decrypt"], []) and resolved(st["resources"]) == (["${var.k}"], [])


def test_function_policy_statements_come_from_checked_locals():
    """lambda_function passes policy_statements through (UNRESOLVED_ALLOWED): the root gives it
    only the locals the IAM test checks."""
    checked = ("lake_kms_statements", "map_results_read_statements", "pg_secret_statements", "mysql_secret_statements", "pg_secret_kms_statements",
               "mysql_secret_kms_statements", "oauth_secret_statements", "oauth_secret_kms_statements")
    allowed = re.compile(r'^local\.((function_statements|redshift_data_statements)\["[a-z-]+"\]|' + "|".join(checked) + ")$")
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    assert {"function_statements", "redshift_data_statements", *checked} <= set(locals_)
    for name, body in tp.lambda_modules().items():
        expr = body.get("policy_statements")
        if expr is None:
            continue
        parts = split_top(expr[len("${concat("):-2]) if expr.startswith("${concat(") else [expr[2:-1]]
        assert all(allowed.match(p) for p in parts), f"module {name}: policy_statements = {expr}"


def rust_redshift_data_calls() -> set[str]:
    src = (tp.REPO_ROOT / "shared" / "src" / "serving" / "data_api.rs").read_text()
    src = re.split(r"(?m)^#\[cfg\(test\)\]", src)[0]
    calls = set(re.findall(r"\.client\s*\.\s*([a-z_]+)\s*\(\)", src))
    return {"redshift-data:" + "".join(w.capitalize() for w in c.split("_")) for c in calls}


# Placeholder ARNs the Redshift statements are evaluated with.
REDSHIFT_ARNS = {"redshift_workgroup_arn": "arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/wg-0",
                 "redshift_admin_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift!deftunes-admin-AbCdEf"}
REDSHIFT_DATA_CALLS = {"redshift-data:ExecuteStatement", "redshift-data:DescribeStatement", "redshift-data:CancelStatement"}


def redshift_data_statements() -> dict[str, list[dict]]:
    """modules/pipeline's local.redshift_data_statements evaluated by Terraform (a for expression
    over the functions that run SQL in Redshift), with REDSHIFT_ARNS: {function: statements}."""
    expr = tp.locals_of(tp.PIPELINE_DIR)["redshift_data_statements"]
    assert expr.startswith("${") and expr.endswith("}"), expr
    return tp.console_eval(expr[2:-1], REDSHIFT_ARNS)


def test_redshift_roles_grant_exactly_the_data_api_calls_they_make():
    """redshift-setup and run-control get the same three statements from one local: ExecuteStatement
    on the workgroup, the admin secret, and the statement APIs on statements the role started.
    Only run-control, which reads its chart queries' rows, may read results (GetStatementResult):
    redshift-setup's statements are what they were."""
    statements = redshift_data_statements()
    assert set(statements) == {"redshift-setup", "run-control"}
    condition = {"test": "StringEquals", "variable": "redshift-data:statement-owner-iam-userid", "values": ["${aws:userid}"]}

    def expected(own_actions):
        return [
            {"sid": "RunStatements", "actions": ["redshift-data:ExecuteStatement"],
             "resources": [REDSHIFT_ARNS["redshift_workgroup_arn"]], "conditions": []},
            {"sid": "AdminSecret", "actions": ["secretsmanager:GetSecretValue"],
             "resources": [REDSHIFT_ARNS["redshift_admin_secret_arn"]], "conditions": []},
            {"sid": "OwnStatements", "actions": own_actions, "resources": ["*"], "conditions": [condition]},
        ]

    assert statements["redshift-setup"] == expected(["redshift-data:DescribeStatement", "redshift-data:CancelStatement"])
    assert statements["run-control"] == expected(
        ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"])
    for function, listed in statements.items():
        (own,) = [st for st in listed if st["sid"] == "OwnStatements"]
        assert set(own["actions"]) <= set(SERVICE_WIDE_ACTIONS), function
    # The Data API calls the shared client makes (shared/src/serving/data_api.rs): every one is
    # granted to run-control, and redshift-setup's are among them.
    calls = rust_redshift_data_calls()
    granted = {f: {a for st in listed for a in st["actions"] if a.startswith("redshift-data:")} for f, listed in statements.items()}
    assert granted["redshift-setup"] == REDSHIFT_DATA_CALLS <= calls, calls
    assert calls <= granted["run-control"] == REDSHIFT_DATA_CALLS | {"redshift-data:GetStatementResult"}, calls
    modules = tp.blocks(tp.PIPELINE_DIR, "module")
    assert modules["redshift_setup"]["policy_statements"] == '${local.redshift_data_statements["redshift-setup"]}'
    assert 'local.redshift_data_statements["run-control"]' in modules["run_control"]["policy_statements"]
    assert '"redshift-setup"' not in tp.locals_of(tp.PIPELINE_DIR)["function_statements"]
    for module in ("redshift_setup", "run_control"):
        # With REDSHIFT_SECRET_ARN the Data API authenticates with the secret, not temporary
        # workgroup credentials: no redshift-serverless:GetCredentials.
        env = modules[module]["environment"]
        assert env["REDSHIFT_SECRET_ARN"] == "${var.redshift_admin_secret_arn}", module
        assert env["REDSHIFT_WORKGROUP"] == "${var.redshift_workgroup_name}", module
        assert not any(a.startswith("redshift-serverless:") for listed in statements.values() for st in listed for a in st["actions"])


def star_statements():
    """(file, line number, lines, policy document name) of every statement whose resources are ["*"]."""
    for path in sorted(tp.TF_DIR.rglob("*.tf")):
        lines = path.read_text().splitlines()
        document = None
        for i, line in enumerate(lines):
            m = re.match(r'^data "aws_iam_policy_document" "(\w+)"', line)
            if m:
                document = m.group(1)
            if re.search(r'\bresources\s*=\s*\["\*"\]', line):
                yield path, i, lines, document


def test_every_star_resource_says_why_and_is_documented():
    readme = (tp.TF_DIR / "README.md").read_text()
    found = 0
    key_policy_stars = 0
    key_docs = key_policy_documents()
    assert key_docs, "no KMS key policy found: has the alarm topic's key moved?"
    for path, i, lines, document in star_statements():
        if (path.parent, document) in key_docs:
            # In a key policy "*" is the key itself: the statement says so.
            key_policy_stars += 1
            above = " ".join(l.strip() for l in lines[max(0, i - 3):i + 1] if l.strip().startswith("#"))
            assert "key itself" in above, f'{path.relative_to(tp.TF_DIR)}:{i + 1}: say that "*" is the key itself (a key policy)'
            continue
        found += 1
        # The enclosing statement: back to its opening line, plus the comments right above it.
        j = i
        while j > 0 and not re.match(r'^\s*(statement\s*\{|dynamic\s+"statement"\s*\{|\{)\s*$', lines[j]):
            j -= 1
        k = j
        while k > 0 and lines[k - 1].strip().startswith("#"):
            k -= 1
        comments = " ".join(l.strip() for l in lines[k:i + 1] if l.strip().startswith("#"))
        where = f"{path.relative_to(tp.TF_DIR)}:{i + 1}"
        assert "resource-level permissions" in comments, f'{where}: say why "*" (no resource-level permissions)'
    assert found == 6, found
    assert key_policy_stars == 2, key_policy_stars
    assert "key itself" in " ".join(readme.split("## IAM", 1)[-1].split()), 'terraform/README.md "## IAM" does not say that "*" in a key policy is the key'
    star_actions = set()
    for key, where, st in iam_statements():
        if "resources" in st and st["resources"] == ['"*"'] and not in_key_policy(key, where):
            star_actions |= {tp.unquote(a) for a in st["actions"]}
    # The statements of a for expression (local.redshift_data_statements), as Terraform evaluates them.
    star_actions |= {a for listed in redshift_data_statements().values() for st in listed if st["resources"] == ["*"]
                     for a in st["actions"]}
    section = readme.split("## IAM", 1)[1].split("\n## ", 1)[0] if "## IAM" in readme else ""
    undocumented = sorted(a for a in star_actions if f"`{a}`" not in section)
    assert not undocumented, f'terraform/README.md "## IAM" does not list these "*" actions: {undocumented}'
    assert star_actions <= set(SERVICE_WIDE_ACTIONS)


def test_no_wildcard_action_anywhere_but_the_tls_deny():
    hits = []
    for path in sorted(tp.TF_DIR.rglob("*.tf")):
        for m in re.finditer(r'"([a-z0-9-]+:[A-Za-z0-9]*\*[A-Za-z0-9*]*)"', path.read_text()):
            hits.append((path.relative_to(tp.TF_DIR).as_posix(), m.group(1)))
    assert hits == [("modules/data_lake/main.tf", "s3:*")], hits


def test_every_function_role_is_its_own():
    body = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_iam_role")["this"]
    assert body["name"] == "${var.function_name}"


# ------------------------------------------------------------------ state machine role: the windows' Distributed Map
ORCHESTRATION = tp.MODULES_DIR / "orchestration"
# What local.partition, local.region, local.account_id and var.* resolve to in the checks below.
ARN_VALUES = {"local.partition": "aws", "local.region": "us-east-1", "local.account_id": "123456789012",
              "var.name": "deftunes", "var.bucket_name": "deftunes-lake-123456789012-us-east-1",
              "var.map_results_prefix": "reports/map-results/deftunes"}
WITH_EXTRACTS = "${length(var.extracts) > 0 ? [1] : []}"


def state_machine_role_statements() -> dict[str, tuple[dict, str | None]]:
    """{sid: (statement, for_each of its dynamic block or None)} of the state machine role's policy."""
    out = {}
    for entry in tp.parse_dir(ORCHESTRATION)["iam.tf"]["data"]:
        document = entry.get('"aws_iam_policy_document"') or entry.get("aws_iam_policy_document") or {}
        body = document.get('"state_machine"') or document.get("state_machine")
        if body is None:
            continue
        for st in body.get("statement", []):
            out[tp.unquote(st["sid"])] = (st, None)
        for dyn in body.get("dynamic", []):
            block = dyn.get('"statement"') or dyn.get("statement")
            for st in block["content"]:
                out[tp.unquote(st["sid"])] = (st, block["for_each"])
    assert out, "the state machine role's policy document was not found"
    return out


def resolve_arn(text: str) -> str:
    """A resource of the orchestration module with its locals and variables filled in."""
    name = tp.unquote(tp.locals_of(ORCHESTRATION)["state_machine_name"])
    text = tp.unquote(text).replace("${local.state_machine_arn}", tp.unquote(tp.locals_of(ORCHESTRATION)["state_machine_arn"]))
    text = text.replace("${local.state_machine_name}", name)
    for ref, value in ARN_VALUES.items():
        text = text.replace("${" + ref + "}", value)
    assert "${" not in text, text
    return text


def iam_matches(pattern: str, arn: str) -> bool:
    """IAM's resource matching: * is any run of characters (also "/" and ":"), ? one character."""
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), arn) is not None


def test_state_machine_role_runs_the_windows_distributed_map_with_least_privilege():
    """Child executions of its own state machine only (the ARN built from the name: the state
    machine's own arn in its role's policy would be a cycle), tracking and stopping its children
    but not other executions, the failed-window lookup, and the map results below the pipeline's
    prefix only. Only for a pipeline with extracts (a files-only one has no Map)."""
    statements = state_machine_role_statements()
    states = "arn:aws:states:us-east-1:123456789012"
    expected = {
        "StartWindowExecutions": (["states:StartExecution"], [f"{states}:stateMachine:deftunes-pipeline"]),
        "TrackWindowExecutions": (["states:DescribeExecution", "states:StopExecution"], [f"{states}:execution:deftunes-pipeline/*"]),
        "FindFailedWindow": (["states:ListMapRuns", "states:ListExecutions"],
                             [f"{states}:execution:deftunes-pipeline:*", f"{states}:mapRun:deftunes-pipeline/*"]),
        "WriteMapResults": (["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                            ["arn:aws:s3:::deftunes-lake-123456789012-us-east-1/reports/map-results/deftunes/*"]),
    }
    for sid, (actions, resources) in expected.items():
        statement, for_each = statements[sid]
        assert [tp.unquote(a) for a in statement["actions"]] == actions, sid
        assert [resolve_arn(r) for r in statement["resources"]] == resources, sid
        assert for_each == WITH_EXTRACTS, sid
    key, for_each = statements["MapResultsKey"]
    assert [tp.unquote(a) for a in key["actions"]] == ["kms:GenerateDataKey", "kms:Decrypt"] and key["resources"] == ["${var.kms_key_arn}"]
    assert for_each == "${length(var.extracts) > 0 && var.kms_key_arn != null ? [1] : []}"
    assert tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]["kms_key_arn"] == "${var.lake_kms_key_arn}"

    # The name the ARN is built from is the state machine's.
    machine = tp.resources(ORCHESTRATION, "aws_sfn_state_machine")["pipeline"]
    assert machine["name"] == "${local.state_machine_name}" and machine["role_arn"] == "${aws_iam_role.state_machine.arn}"
    iam_text = (ORCHESTRATION / "iam.tf").read_text()
    document = iam_text.split('data "aws_iam_policy_document" "state_machine"', 1)[1].split("\nresource ", 1)[0]
    assert "aws_sfn_state_machine" not in document, "the role's policy must not reference the state machine (a cycle)"

    # What the ARNs let through: the children (execution:<name>/<label>:<id>), this Map Run, this
    # pipeline's results; not the parent executions, another state machine's, another prefix.
    child = f"{states}:execution:deftunes-pipeline/windows:0f5b7a2e-5e1c-4d43-9a3c-1f0a6a3b1c11"
    track = expected["TrackWindowExecutions"][1][0]
    assert iam_matches(track, child)
    assert not iam_matches(track, f"{states}:execution:deftunes-pipeline:0f5b7a2e")
    assert not iam_matches(track, f"{states}:execution:deftunes-pipeline-other/windows:0f5b7a2e")
    (own, runs) = expected["FindFailedWindow"][1]
    assert iam_matches(own, f"{states}:execution:deftunes-pipeline:run-1") and not iam_matches(own, child.replace("deftunes-pipeline", "x"))
    assert iam_matches(runs, f"{states}:mapRun:deftunes-pipeline/windows:9d2e7b")
    results = expected["WriteMapResults"][1][0]
    assert iam_matches(results, "arn:aws:s3:::deftunes-lake-123456789012-us-east-1/reports/map-results/deftunes/9d2e7b/manifest.json")
    assert not iam_matches(results, "arn:aws:s3:::deftunes-lake-123456789012-us-east-1/reports/map-results/deftunes-sparkify/x")
    assert not iam_matches(results, "arn:aws:s3:::deftunes-lake-123456789012-us-east-1/transform_zone/x")


def test_state_machine_role_grants_what_the_definition_calls_for_its_map():
    """Every Step Functions SDK call of the definition is an action of the role, and the
    ResultWriter writes to the bucket and prefix the role may write (the same variables)."""
    definition = json.loads(tp.render_template(fake_definition_values(terraform_function_arns())))
    granted = {tp.unquote(a) for st, _ in state_machine_role_statements().values() for a in st["actions"]}
    calls = {s["Resource"].rsplit(":", 1)[1] for _, s in iter_states(definition["States"])
             if s.get("Resource", "").startswith("arn:aws:states:::aws-sdk:sfn:")}
    assert calls == {"listMapRuns", "listExecutions", "describeExecution"}
    assert {f"states:{c[0].upper()}{c[1:]}" for c in calls} <= granted
    process = definition["States"]["Process windows"]
    assert process["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject" and "s3:PutObject" in granted
    definition_vars = tp.definition_vars()
    assert definition_vars["map_results_bucket"] == "${var.bucket_name}"
    assert definition_vars["map_results_prefix"] == "${var.map_results_prefix}"
    assert definition_vars["backfill_max_concurrency"] == "${var.backfill_max_concurrency}"
    (write, _) = state_machine_role_statements()["WriteMapResults"]
    assert write["resources"] == ['"arn:${local.partition}:s3:::${var.bucket_name}/${var.map_results_prefix}/*"']


# ------------------------------------------------------------------ state machine wiring
def terraform_function_arns() -> dict[str, str]:
    """{crate: fake ARN} of every Lambda in the Terraform, named as Terraform names them."""
    return {
        tp.crate_of_module(body): f"arn:aws:lambda:us-east-1:123456789012:function:{tp.function_name_of(body)}"
        for body in tp.lambda_modules().values()
    }


def default_pipelines() -> list[str]:
    """The keys of var.pipelines' default."""
    return [tp.unquote(k) for k in tp.variable_default(tp.TF_DIR, "pipelines")]


def default_pipeline_extracts() -> list[dict]:
    (pipeline,) = default_pipelines()
    return tp.deploy_json(pipeline)["extracts"]


MAP_RESULTS_BUCKET = "deftunes-lake-123456789012-us-east-1"


def fake_definition_values(function_arns: dict[str, str]) -> dict:
    """Values for local.definition_vars: function ARNs as Terraform would pass them, the rest
    fake but well-formed. Shared with test_state_machine.py."""
    values = {}
    for name, expr in tp.definition_vars().items():
        m = tp.FUNCTION_ARN_EXPR.match(expr)
        if m:
            values[name] = function_arns[m.group(1)]
    # Every function the pipeline deploys (the extract functions only where its extracts call them).
    values["function_arns"] = {c: arn for c, arn in function_arns.items() if c != "api-emulator"}
    fake = {
        "ecs_cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/deftunes",
        "dbt_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/deftunes-dbt:1",
        "dbt_container_name": "dbt",
        "dbt_subnet_ids": ["subnet-0a", "subnet-0b", "subnet-0c"],
        "dbt_security_group_ids": ["sg-0dbt"],
        "dbt_assign_public_ip": "DISABLED",
        # What the root passes: the extracts of the default pipeline's deploy.json.
        "extracts": default_pipeline_extracts(),
        # The root's default, and the lake bucket and map results prefix of the default pipeline.
        "backfill_max_concurrency": tp.variable_default(tp.TF_DIR, "backfill_max_concurrency"),
        "map_results_bucket": MAP_RESULTS_BUCKET,
        "map_results_prefix": f"reports/map-results/{default_pipelines()[0]}",
    }
    for name in tp.definition_vars():
        values.setdefault(name, fake.get(name))
    missing = [k for k, v in values.items() if v is None]
    assert not missing, f"no test value for definition_vars {missing}: extend fake_definition_values"
    return values


def test_definition_vars_are_exactly_the_template_variables():
    """templatefile() needs every definition var (rendering without one fails) and nothing else
    (it renders with exactly these)."""
    values = fake_definition_values(terraform_function_arns())
    json.loads(tp.render_template(values))
    for name in values:
        with pytest.raises(RuntimeError, match=f'vars map does not contain key "{name}"'):
            tp.render_template({k: v for k, v in values.items() if k != name})
    orchestration = tp.resources(tp.MODULES_DIR / "orchestration", "aws_sfn_state_machine")["pipeline"]
    assert orchestration["definition"] == (
        '${templatefile("${path.module}/state_machine.asl.json.tftpl", local.definition_vars)}'
    )


def test_state_machine_calls_only_functions_that_exist_in_terraform():
    modules = tp.lambda_modules()
    crate_by_module = {name: tp.crate_of_module(body) for name, body in modules.items()}
    call = tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]
    assert call["function_arns"] == "${local.function_arns}"
    passed = function_arns_passed()
    for key, expr in passed.items():
        m = re.fullmatch(r"\$\{(?:module\.([a-z0-9_]+)\.function_arn|m\.function_arn)\}", expr)
        assert m, f"function_arns[{key}] must be a lambda module's function_arn, got {expr}"
        module = m.group(1) or key.replace("-", "_")
        assert crate_by_module.get(module) == key, (
            f"function_arns[{key}] points at module {module}, which deploys {crate_by_module.get(module)}"
        )
    assert set(passed) == {"transform", "redshift-setup", "run-control", "api-extract", "songs-extract"}, passed
    for name, expr in tp.definition_vars().items():
        m = tp.FUNCTION_ARN_EXPR.match(expr)
        if m:
            assert m.group(1) in passed, f"{name} uses function_arns[{m.group(1)}], not passed"
    assert tp.definition_vars()["function_arns"] == "${var.function_arns}"

    arns = terraform_function_arns()
    rendered = tp.render_template(fake_definition_values(arns))
    definition = json.loads(rendered)
    used = set(re.findall(r"arn:aws:lambda:[^\"]+", rendered))
    assert used, "the state machine calls no Lambda"
    assert used <= set(arns.values()), f"unknown functions in the state machine: {used - set(arns.values())}"
    assert definition["StartAt"] in definition["States"]


def function_arns_passed() -> dict[str, str]:
    """{crate: expression} of modules/pipeline's local.function_arns: merge({transform,
    redshift-setup}, {for m in module.api_extract : "api-extract" => m.function_arn}, ...), the
    extract functions present only when deployed (count)."""
    expr = tp.locals_of(tp.PIPELINE_DIR)["function_arns"]
    assert expr.startswith("${merge(") and expr.endswith(")}"), expr
    passed = {}
    for part in split_top(expr[len("${merge("):-2]):
        m = re.fullmatch(r'\{\s*for m in module\.([a-z_]+)\s*:\s*"([a-z-]+)"\s*=>\s*m\.function_arn\s*\}', part.strip())
        if m:
            assert m.group(1) == m.group(2).replace("-", "_"), part
            passed[m.group(2)] = "${m.function_arn}"
            continue
        assert part.strip().startswith("{"), part
        for item in split_top(part.strip()[1:-1].replace("\n", ",")):
            key, _, value = item.partition("=")
            passed[tp.unquote(key.strip())] = "${" + value.strip() + "}"
    return passed


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
    # Extract and transform per source; Redshift setup; run-control's catch-up plan and both run reports.
    assert lambda_tasks == 2 * len(default_pipeline_extracts()) + 4


def test_failures_end_in_fail_states_that_keep_the_error():
    definition = json.loads(tp.render_template(fake_definition_values(terraform_function_arns())))
    top = definition["States"]
    fails = {n for n, s in top.items() if s["Type"] == "Fail"}
    assert {"Pipeline failed", "Data quality failed"} <= fails
    for n in fails:
        assert top[n].get("ErrorPath") == "$.error.Error" and top[n].get("CausePath") == "$.error.Cause"
    # Every step's errors go to the failure report first (then the Fail states, test_state_machine),
    # in $.error, which the report leaves alone.
    for name in ("Process windows", "Set up Redshift", "Run dbt build"):
        catches = top[name]["Catch"]
        assert catches[-1]["ErrorEquals"] == ["States.ALL"] and catches[-1]["Next"] == "Failure report size?"
        assert all(c["ResultPath"] == "$.error" for c in catches)
    assert top["Failure report size?"]["Default"] == "Write failure report"
    assert top["Write failure report"]["Catch"][0]["ResultPath"] == "$.report_error"


# ------------------------------------------------------------------ optional demo source
DEMO_FLAG = "${var.deploy_demo_source ? 1 : 0}"


def test_optional_functions_are_the_demo_source_and_the_extracts_a_pipeline_calls():
    optional = {name: body for name, body in tp.lambda_modules().items() if "count" in body or "for_each" in body}
    assert {name: tp.crate_of_module(body) for name, body in optional.items()} == {
        "api_emulator": "api-emulator", "api_extract": "api-extract", "songs_extract": "songs-extract"}
    assert optional["api_emulator"]["count"] == DEMO_FLAG
    assert tp.variable_default(tp.TF_DIR, "deploy_demo_source") is False
    # An extract function exists in a pipeline exactly when its deploy.json extracts call it.
    assert optional["api_extract"]["count"] == "${local.deploy_api_extract ? 1 : 0}"
    assert optional["songs_extract"]["count"] == "${local.deploy_songs_extract ? 1 : 0}"
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    assert locals_["deploy_api_extract"] == '${contains(var.settings.extract_functions, "api-extract")}'
    assert locals_["deploy_songs_extract"] == '${contains(var.settings.extract_functions, "songs-extract")}'
    # The pipeline never calls the demo source: it is a source, reached over HTTP by api-extract.
    assert "api-emulator" not in function_arns_passed()


def test_public_function_url_is_only_the_opt_in_demo_source():
    """CKV_AWS_258 (AuthType NONE) is skipped in .checkov.yaml for this one resource: any other
    function URL must not be public, and this one exists only with deploy_demo_source."""
    urls = {}
    for directory in all_tf_dirs():
        for name, body in tp.resources(directory, "aws_lambda_function_url").items():
            urls[(directory.name, name)] = body
    public = {k: b for k, b in urls.items() if tp.unquote(b.get("authorization_type")) == "NONE"}
    assert list(public) == [(tp.TF_DIR.name, "demo_source")], list(public)
    url = public[(tp.TF_DIR.name, "demo_source")]
    assert url["count"] == DEMO_FLAG
    assert url["function_name"] == "${module.api_emulator[0].function_name}"
    # A month of sessions is larger than a buffered response may be (6 MB).
    assert tp.unquote(url["invoke_mode"]) == "RESPONSE_STREAM"
    assert "CKV_AWS_258" in (tp.TF_DIR / ".checkov.yaml").read_text()


def test_api_extract_uses_the_demo_source_only_without_api_base_url():
    env = tp.blocks(tp.PIPELINE_DIR, "module")["api_extract"]["environment"]
    assert env["API_BASE_URL"] == "${var.settings.api_base_url}"
    assert tp.locals_of(tp.TF_DIR)["api_base_url"] == (
        "${var.api_base_url != null ? var.api_base_url : one(aws_lambda_function_url.demo_source[*].function_url)}"
    )
    # ... the default of every pipeline's api_base_url (modules/pipeline_settings).
    settings = tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]
    assert settings["defaults"]["api_base_url"] == "${local.api_base_url}"
    variable = tp.blocks(tp.TF_DIR, "variable")["api_base_url"]
    assert variable["default"] is None
    outputs = tp.blocks(tp.TF_DIR, "output")
    assert outputs["demo_source_url"]["value"] == "${one(aws_lambda_function_url.demo_source[*].function_url)}"


# ------------------------------------------------------------------ dbt task vs dbt_modeling
DBT_DIR = tp.REPO_ROOT / "dbt_modeling"
DBT_TASK_DIR = tp.MODULES_DIR / "dbt_task"
PIPELINE_FOLDERS = sorted(p.parent.name for p in (tp.REPO_ROOT / "pipelines").glob("*/deploy.json"))


def dbt_project_of(pipeline: str) -> Path:
    return tp.REPO_ROOT / tp.deploy_json(pipeline)["dbt_project_dir"]


def dbt_redshift_env_vars(project: Path = DBT_DIR) -> set[str]:
    """env_var() names the redshift target reads: the project, its models, macros (its own and
    those of its macro-paths) and snapshots, and the `redshift:` output of profiles.yml (the
    `local:` output is the DuckDB one)."""
    names = set()
    config = (project / "dbt_project.yml").read_text()
    macro_dirs = [project / "macros"]
    m = re.search(r"(?m)^macro-paths:\s*\[(.*)\]", config)
    if m:
        macro_dirs = [(project / p.strip().strip("\"'")).resolve() for p in m.group(1).split(",")]
    dirs = [project / sub for sub in ("models", "snapshots", "tests")] + macro_dirs
    files = [project / "dbt_project.yml"] + [
        p for d in dirs for p in d.rglob("*") if p.suffix in (".yml", ".sql")
    ]
    for path in files:
        text = path.read_text()
        # A macro that returns at once unless target.type is duckdb reads nothing on Redshift.
        if re.search(r"if not execute or target\.type != 'duckdb'", text) and path.parent.name == "macros":
            continue
        names |= set(re.findall(r"env_var\(\s*['\"]([A-Z0-9_]+)['\"]", text))
    profiles = (project / "profiles.yml").read_text()
    redshift = re.split(r"(?m)^\s+redshift:\s*$", profiles)
    assert len(redshift) == 2, "profiles.yml has no `redshift:` output"
    names |= set(re.findall(r"env_var\(\s*['\"]([A-Z0-9_]+)['\"]", redshift[1]))
    return names


@pytest.mark.parametrize("pipeline", PIPELINE_FOLDERS)
def test_dbt_task_passes_every_variable_the_redshift_target_reads(pipeline):
    task = tp.resources(DBT_TASK_DIR, "aws_ecs_task_definition")["dbt"]["container_definitions"]
    passed = dict(re.findall(r'\{name = "([A-Z0-9_]+)", (?:value|valueFrom) = ([^}]+)\}', task))
    project = dbt_project_of(pipeline)
    read = dbt_redshift_env_vars(project)
    assert {"REDSHIFT_HOST", "REDSHIFT_USER", "DBT_SERVING_SCHEMA", "DBT_SOURCE_SCHEMA"} <= read
    missing = sorted(read - set(passed))
    assert not missing, f"{project.relative_to(tp.REPO_ROOT)} reads {missing}, which the dbt task does not set"
    # The schemas dbt builds in are the ones the pipeline's redshift-setup creates and grants.
    assert passed["DBT_SOURCE_SCHEMA"] == "var.external_schema"
    assert passed["DBT_SERVING_SCHEMA"] == "var.serving_schema"
    assert passed["DBT_BI_SCHEMA"] == "var.bi_schema"
    dbt_task = tp.blocks(tp.PIPELINE_DIR, "module")["dbt_task"]
    setup = tp.blocks(tp.PIPELINE_DIR, "module")["redshift_setup"]["environment"]
    for module_var, setup_var in [("external_schema", "EXTERNAL_SCHEMA"), ("serving_schema", "SERVING_SCHEMA"), ("bi_schema", "BI_SCHEMA")]:
        assert dbt_task[module_var] == f"${{var.settings.{module_var}}}" == setup[setup_var], module_var
    # The task runs the pipeline's project: the command modules/pipeline_settings builds.
    assert dbt_task["dbt_command"] == "${var.settings.dbt_command}"


def test_dbt_image_matches_the_task_and_the_local_pins():
    dockerfile = (DBT_DIR / "Dockerfile").read_text()
    args = dict(re.findall(r"(?m)^ARG (\w+)=(\S+)$", dockerfile))
    requirements = (tp.REPO_ROOT / "local" / "python" / "requirements.txt").read_text()
    # dbt-redshift pinned exactly; dbt-core inside the local range (e.g. >=1.11,<1.12).
    assert f"dbt-redshift=={args['DBT_REDSHIFT_VERSION']}" in requirements.split()
    core = re.search(r"(?m)^dbt-core(\S+)$", requirements).group(1)
    version = tuple(int(p) for p in args["DBT_CORE_VERSION"].split("."))
    for bound in core.split(","):
        op, ref = re.fullmatch(r"(>=|<|==)([\d.]+)", bound).groups()
        ref_t = tuple(int(p) for p in ref.split("."))
        assert {">=": version >= ref_t, "<": version < ref_t, "==": version == ref_t}[op], (args, core)
    assert re.search(r"(?m)^FROM python:3\.11-slim$", dockerfile)
    assert re.search(r"(?m)^USER (?!root)\w+$", dockerfile), "the image must not run as root"
    assert '\nENTRYPOINT ["dbt"]\n' in dockerfile
    cmd = json.loads(re.search(r"(?m)^CMD (\[.*\])$", dockerfile).group(1))
    # The task's command replaces CMD: CMD is the deftunes pipeline's command, the module default.
    default_command = tp.blocks(DBT_TASK_DIR, "variable")["dbt_command"]["default"]
    deftunes = tp.plan_settings({"deftunes": {}})["deftunes"]["dbt_command"]
    assert [tp.unquote(a) for a in default_command] == cmd == deftunes == [
        "build", "--target", "redshift", "--project-dir", "/dbt/dbt_modeling", "--profiles-dir", "/dbt/dbt_modeling"]


# ------------------------------------------------------------------ opt-in resources in checkov
def checkov_tfvars() -> dict:
    import hcl2

    with (tp.TF_DIR / "tests" / "checkov.tfvars").open() as fh:
        return {k: tp.unquote(v) for k, v in hcl2.load(fh).items()}


def _switch_variables(directory: Path, seen: tuple = ()) -> set[str]:
    """Variables of a module that switch resources, dynamic blocks or statements on, in its own
    code (`var.x ? ...`, `var.x == null ? ...`) or in a module it calls (passed as `var.x`)."""
    code = "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))
    names = set()
    for name, body in tp.blocks(directory, "variable").items():
        default = body.get("default", "<required>")
        if default is False and (name.startswith(("deploy_", "enable_")) or (not seen and re.search(rf"var\.{name}\s*\?", code))):
            names.add(name)
        if default is None and re.search(rf"var\.{name}\s*==\s*null\s*\?", code):
            names.add(name)
        # In a module below the root: what switches a resource or a dynamic block on.
        if seen and re.search(rf"(?:for_each|count)\s*=\s*var\.{name}\s*(?:\?|==\s*null\s*\?)", code):
            names.add(name)
    for call in tp.blocks(directory, "module").values():
        child = (directory / tp.unquote(call.get("source", ""))).resolve()
        if not (child / "variables.tf").exists() or child in seen:
            continue
        for child_var in _switch_variables(child, seen + (directory,)):
            m = re.fullmatch(r"\$\{var\.(\w+)\}", str(call.get(child_var, "")))
            if m:
                names.add(m.group(1))
    return names


def opt_in_variables() -> set[str]:
    """Root variables that switch resources, dynamic blocks or statements on, in the root or in
    any module below it: bools named deploy_*/enable_* or used as `var.x ? ...`, and nullable ones
    used as `var.x == null ? ...`."""
    return _switch_variables(tp.TF_DIR)


def test_checkov_renders_every_opt_in_resource():
    opt_in = opt_in_variables()
    assert {"deploy_demo_source", "enable_table_optimizers", "lake_kms_key_arn", "pg_secret_kms_key_arn",
            "dbt_read_only_root_filesystem"} <= opt_in, opt_in
    tfvars = checkov_tfvars()
    off = sorted(n for n in opt_in if tfvars.get(n) in (None, False))
    assert not off, f"terraform/tests/checkov.tfvars leaves opt-in variables off (checkov would not scan what they create): {off}"
    assert tfvars.get("songs_subnet_ids"), "set songs_subnet_ids so the VPC statements and vpc_config are scanned"


def test_every_checkov_skip_has_a_reason():
    lines = (tp.TF_DIR / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    for i, line in enumerate(lines[start + 1:], start + 1):
        m = re.match(r"^\s*-\s*(CKV\w+)", line)
        if m:
            # Its reason is the comment above it, or above the group of skips it belongs to.
            j = i - 1
            while re.match(r"^\s*-\s*CKV", lines[j]):
                j -= 1
            assert lines[j].strip().startswith("#"), f".checkov.yaml: {m.group(1)} has no reason above it"
    # Inline skips (on one block only) carry their reason: #checkov:skip=<check>:<reason>.
    inline = 0
    for path in sorted(tp.TF_DIR.rglob("*.tf")):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                inline += 1
                m = re.match(r"^\s*#\s*checkov:skip=(CKV2?_\w+):(.{20,})$", line)
                assert m, f"{path.relative_to(tp.TF_DIR)}: an inline skip needs a check id and a reason: {line.strip()}"
    assert inline == 3, inline


# ------------------------------------------------------------------ defaults and validations
def test_first_apply_starts_no_scheduled_runs():
    """The dbt image is pushed after the first apply: the schedule is off until turned on."""
    assert tp.variable_default(tp.TF_DIR, "schedule_enabled") is False
    assert tp.variable_default(tp.MODULES_DIR / "orchestration", "schedule_enabled") is False
    schedule = tp.resources(tp.MODULES_DIR / "orchestration", "aws_scheduler_schedule")["pipeline"]
    assert schedule["state"] == '${var.schedule_enabled ? "ENABLED" : "DISABLED"}'


def _validations(directory, name):
    return [v["condition"] for v in tp.blocks(directory, "variable")[name].get("validation", [])]


@pytest.mark.parametrize("value,ok", [(1, True), (10, True), (10000, True), (0, False), (-1, False), (2.5, False), (10001, False)])
def test_backfill_max_concurrency_is_validated(value, ok):
    """Terraform evaluates each validation of it (root, orchestration, and the defaults of
    modules/pipeline_settings) on the value; a pipeline's own override: test_pipelines."""
    conditions = [(tp.TF_DIR, "backfill_max_concurrency", "backfill_max_concurrency"),
                  (tp.MODULES_DIR / "orchestration", "backfill_max_concurrency", "backfill_max_concurrency")]
    for directory, variable, name in conditions:
        (condition,) = _validations(directory, variable)
        assert tp.console_eval(condition[2:-1], {name: value}) is ok, (directory.name, value)
    (condition,) = [c for c in _validations(tp.MODULES_DIR / "pipeline_settings", "defaults") if "backfill_max_concurrency" in c]
    assert tp.console_eval(condition[2:-1], {"defaults": {"backfill_max_concurrency": value}}) is ok


@pytest.mark.parametrize("value,ok", [("reports/map-results/deftunes", True), ("lake/reports/map-results/a_b-c.d", True),
                                      ("reports/map-results/deftunes/", False), ("/reports", False), ("a//b", False), ("", False)])
def test_map_results_prefix_is_validated(value, ok):
    (condition,) = _validations(tp.MODULES_DIR / "orchestration", "map_results_prefix")
    assert tp.console_eval(condition[2:-1], {"map_results_prefix": value}) is ok


def test_inputs_are_validated():
    for directory in (tp.TF_DIR, tp.MODULES_DIR / "orchestration"):
        (cond,) = _validations(directory, "transform_max_concurrency")
        assert ">= 2" in cond and "<= 1000" in cond, cond
    for directory in (tp.TF_DIR, DBT_TASK_DIR):
        (cond,) = _validations(directory, "dbt_cpu_architecture")
        assert re.search(r'contains\(\["X86_64", "ARM64"\], var\.dbt_cpu_architecture\)', cond), cond
    (cond,) = _validations(tp.TF_DIR, "demo_source_reserved_concurrency")
    assert "== -1" in cond


def test_public_demo_source_has_reserved_concurrency():
    emulator = tp.lambda_modules()["api_emulator"]
    assert emulator["reserved_concurrent_executions"] == "${var.demo_source_reserved_concurrency}"
    assert tp.variable_default(tp.TF_DIR, "demo_source_reserved_concurrency") == 10
    fn = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_lambda_function")["this"]
    assert fn["reserved_concurrent_executions"] == "${var.reserved_concurrent_executions}"


# ------------------------------------------------------------------ dbt container filesystem
def test_dbt_read_only_root_filesystem_matches_the_image():
    """A Fargate bind mount is root-owned 0755 unless the image declares the path as a VOLUME
    (then ECS copies its content and ownership): read-only root with bind mounts for target/
    and logs/ works for the non-root dbt user only with those VOLUMEs. The default is on
    exactly when dbt_modeling/Dockerfile declares them."""
    task = tp.resources(DBT_TASK_DIR, "aws_ecs_task_definition")["dbt"]
    defs = task["container_definitions"]
    assert "readonlyRootFilesystem = var.dbt_read_only_root_filesystem" in defs
    paths = {k: tp.unquote(v) for k, v in tp.locals_of(DBT_TASK_DIR)["dbt_writable_paths"].items()}
    assert set(paths.values()) == {"/dbt/target", "/dbt/logs"}
    assert "sourceVolume = name, containerPath = path, readOnly = false" in defs
    assert task["dynamic"][0]['"volume"']["for_each"] == "${var.dbt_read_only_root_filesystem ? keys(local.dbt_writable_paths) : []}"
    env = tp.locals_of(DBT_TASK_DIR)["dbt_path_env"]
    assert {tp.unquote(e["name"]): e["value"] for e in env} == {
        "DBT_TARGET_PATH": '${local.dbt_writable_paths["dbt-target"]}',
        "DBT_LOG_PATH": '${local.dbt_writable_paths["dbt-logs"]}',
    }
    dockerfile = (DBT_DIR / "Dockerfile").read_text()
    assert re.search(r"(?m)^WORKDIR /dbt$", dockerfile) and "chown dbt:dbt /dbt/target /dbt/logs" in dockerfile
    volumes = set()
    for m in re.finditer(r"(?m)^VOLUME\s+(.+)$", dockerfile):
        arg = m.group(1).strip()
        volumes |= set(json.loads(arg)) if arg.startswith("[") else set(arg.split())
    declared = set(paths.values()) <= volumes
    for directory in (tp.TF_DIR, tp.PIPELINE_DIR, DBT_TASK_DIR):
        assert tp.variable_default(directory, "dbt_read_only_root_filesystem") is declared, (
            "dbt_modeling/Dockerfile " + ("declares" if declared else "does not declare")
            + " VOLUME /dbt/target /dbt/logs: set the default of dbt_read_only_root_filesystem accordingly"
        )


# ------------------------------------------------------------------ README vs state machine
def test_readme_lists_exactly_the_retried_errors():
    definition = json.loads(tp.render_template(fake_definition_values(terraform_function_arns())))
    retried = set()
    for _, state in iter_states(definition["States"]):
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            retried |= {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
    readme = (tp.TF_DIR / "README.md").read_text()
    m = re.search(r"These errors are retried with backoff:\n\n(.*?)\n\n", readme, re.S)
    assert m, 'terraform/README.md: no "These errors are retried with backoff:" list'
    listed = set(re.findall(r"`([A-Za-z.]+)`", m.group(1)))
    assert listed == retried, f"README lists {sorted(listed)}; the Lambda tasks retry {sorted(retried)}"


def test_top_readme_deploy_section_has_the_steps():
    text = (tp.REPO_ROOT / "README.md").read_text()
    section = text.split("## Deploy to AWS", 1)[1]
    for needle in ("make lambda-build", "terraform.tfvars", "terraform init", "terraform apply",
                   '"start_date"', '"windows"', "dbt", "terraform destroy", "terraform/README.md"):
        assert needle in section, f'README.md "## Deploy to AWS" does not mention {needle}'


def test_snapshots_outlive_every_redelivery_of_a_landing_event():
    """Exactly once rests on the snapshot properties naming each committed (key, version): the
    retention optimizer must keep snapshots longer than an event can still be delivered (queue
    retention, then a redrive from the DLQ with its own retention)."""
    queues = tp.resources(tp.MODULES_DIR / "orchestration", "aws_sqs_queue")
    horizon_s = int(queues["transform"]["message_retention_seconds"]) + int(
        queues["transform_dlq"]["message_retention_seconds"]
    )
    retention_days = tp.variable_default(tp.MODULES_DIR / "catalog", "snapshot_retention_days")
    assert retention_days * 86400 > horizon_s, (retention_days, horizon_s)
    validation = tp.blocks(tp.MODULES_DIR / "catalog", "variable")["snapshot_retention_days"]["validation"]
    floor = int(re.search(r">= (\d+)", validation[0]["condition"]).group(1))
    assert floor * 86400 >= horizon_s, f"the validation lets {floor} days through, below {horizon_s / 86400} days"
