"""Table maintenance: the schedule that invokes transform's orphan file removal, its payload, its
safety age, where its failures go, and the S3 permissions the removal relies on. Static: parses
the HCL with python-hcl2, as test_workspace.py does."""

from __future__ import annotations

import json
import math
import re

import pytest

import tfparse as tp
from test_workspace import function_arns_passed, iam_statements, split_top

ORCHESTRATION = tp.MODULES_DIR / "orchestration"
AGE_VAR = "orphan_files_older_than_hours"
PAYLOAD_KEYS = {"maintenance", "older_than_hours"}
VARIABLES = {
    "orphan_files_cleanup_enabled": True,
    "orphan_files_schedule_expression": "rate(1 day)",
    AGE_VAR: 72,
}


def schedule() -> dict:
    return tp.resources(ORCHESTRATION, "aws_scheduler_schedule")["orphan_files"]


def payload_fields() -> dict[str, str]:
    """{field: HCL expression} of the jsonencode({...}) object the schedule sends."""
    (target,) = schedule()["target"]
    m = re.fullmatch(r"\$\{jsonencode\(\{(.*)\}\)\}", target["input"], re.S)
    assert m, f"the schedule's input must be jsonencode({{...}}) of an object literal, got {target['input']!r}"
    fields = {}
    for part in split_top(m.group(1).replace("\n", ",")):
        key, sep, value = part.partition("=")
        assert sep, f"unexpected field {part!r} in the schedule's input"
        fields[key.strip().strip('"')] = value.strip()
    return fields


def render_payload(values: dict) -> dict:
    """The payload as jsonencode() would produce it, with the given root variable values."""
    out = {}
    for key, expr in payload_fields().items():
        if re.fullmatch(r'"[^"$]*"', expr):
            out[key] = expr[1:-1]
        else:
            m = re.fullmatch(r"var\.(\w+)", expr)
            assert m, f"payload field {key} = {expr}: expected a string literal or a module variable"
            out[key] = values[m.group(1)]
    return out


# ------------------------------------------------------------------ the schedule
def test_schedule_invokes_transform_with_the_orphan_files_payload():
    fields = payload_fields()
    assert set(fields) == PAYLOAD_KEYS, f"payload fields {sorted(fields)}: the function expects exactly {sorted(PAYLOAD_KEYS)}"
    assert fields["maintenance"] == '"remove_orphan_files"'
    assert fields["older_than_hours"] == f"var.{AGE_VAR}"
    # As the function receives it with the defaults (a JSON number, not a string).
    payload = render_payload({AGE_VAR: tp.variable_default(tp.TF_DIR, AGE_VAR)})
    assert json.loads(json.dumps(payload)) == {"maintenance": "remove_orphan_files", "older_than_hours": 72}

    (target,) = schedule()["target"]
    assert target["arn"] == '${var.function_arns["transform"]}'
    # ... which the pipeline module passes as its transform module's ARN.
    call = tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]
    assert call["function_arns"] == "${local.function_arns}"
    assert function_arns_passed()["transform"] == "${module.transform.function_arn}"
    assert tp.crate_of_module(tp.lambda_modules()["transform"]) == "transform"


def test_schedule_follows_the_variables():
    body = schedule()
    assert body["state"] == '${var.orphan_files_cleanup_enabled ? "ENABLED" : "DISABLED"}'
    assert body["schedule_expression"] == "${var.orphan_files_schedule_expression}"
    assert body["schedule_expression_timezone"] == "${var.schedule_timezone}"
    call = tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]
    root_call = tp.blocks(tp.TF_DIR, "module")["pipeline"]
    for name, default in VARIABLES.items():
        assert call.get(name) == f"${{var.{name}}}", f"modules/pipeline does not pass {name} to orchestration"
        assert root_call.get(name) == f"${{var.{name}}}", f"the root does not pass {name} to modules/pipeline"
        for directory in (tp.TF_DIR, tp.PIPELINE_DIR, ORCHESTRATION):
            assert tp.variable_default(directory, name) == default, (directory.name, name)


def _validation_holds(condition: str, value) -> bool:
    """Evaluates an HCL validation condition over numbers, comparisons, && / || and floor()."""
    expr = condition.strip()
    assert expr.startswith("${") and expr.endswith("}"), condition
    expr = expr[2:-1].replace(f"var.{AGE_VAR}", repr(value)).replace("&&", " and ").replace("||", " or ")
    leftovers = set(re.findall(r"[A-Za-z_]\w*", expr)) - {"and", "or", "floor"}
    assert not leftovers and re.fullmatch(r"[\w\s.()<>=!+-]*", expr), f"cannot evaluate {condition!r}"
    return bool(eval(expr, {"__builtins__": {}}, {"floor": math.floor}))  # noqa: S307 (checked above)


@pytest.mark.parametrize("directory", [tp.TF_DIR, tp.PIPELINE_DIR, ORCHESTRATION], ids=lambda d: d.name)
def test_safety_age_is_validated_at_least_a_day(directory):
    (validation,) = tp.blocks(directory, "variable")[AGE_VAR]["validation"]
    condition = validation["condition"]
    for rejected in (0, 1, 12, 23, 23.5, 24.5, -72):
        assert not _validation_holds(condition, rejected), f"{directory.name}: {AGE_VAR} = {rejected} passes {condition}"
    for accepted in (24, 48, 72, 168):
        assert _validation_holds(condition, accepted), f"{directory.name}: {AGE_VAR} = {accepted} fails {condition}"
    assert "in flight" in validation["error_message"]


def test_safety_age_outlasts_any_transform_commit():
    """A transform invocation writes its data files and commits within its timeout: the
    smallest safety age the validation lets through is far longer."""
    timeout_s = int(tp.lambda_modules()["transform"]["timeout"])
    assert 24 * 3600 > 10 * timeout_s, timeout_s


# ------------------------------------------------------------------ failures (asynchronous)
def test_failed_maintenance_invocations_land_in_the_maintenance_dlq():
    queues = tp.resources(ORCHESTRATION, "aws_sqs_queue")
    dlq = queues["maintenance_dlq"]
    assert dlq["sqs_managed_sse_enabled"] is True
    dlq_arn = "${aws_sqs_queue.maintenance_dlq.arn}"
    # Undeliverable (Scheduler side) ...
    (target,) = schedule()["target"]
    assert target["dead_letter_config"][0]["arn"] == dlq_arn
    assert target["retry_policy"][0]["maximum_retry_attempts"] >= 1
    # ... and failed after Lambda's retries (the function side of an asynchronous invocation).
    (config,) = tp.resources(ORCHESTRATION, "aws_lambda_function_event_invoke_config").values()
    assert config["function_name"] == '${var.function_arns["transform"]}'
    assert config["destination_config"][0]["on_failure"][0]["destination"] == dlq_arn
    # Not the landing DLQ: its messages are redriven into the transform queue.
    assert dlq_arn != "${aws_sqs_queue.transform_dlq.arn}"
    outputs = tp.blocks(ORCHESTRATION, "output")
    assert outputs["maintenance_dlq_arn"]["value"] == dlq_arn
    assert "maintenance_dlq_urls" in tp.blocks(tp.TF_DIR, "output")
    assert "maintenance_dlq_url" in tp.blocks(tp.PIPELINE_DIR, "output")


# ------------------------------------------------------------------ IAM
def _statements(key: str, resource: str) -> list[dict]:
    found = [st for k, where, st in iam_statements() if k == key and f"/{resource}/" in where + "/"]
    assert found, f"no statements in {key} {resource}"
    return found


def test_maintenance_scheduler_role_only_invokes_transform():
    schedule_body = schedule()
    assert schedule_body["target"][0]["role_arn"] == "${aws_iam_role.maintenance_scheduler.arn}"
    granted = {}
    for st in _statements("orchestration/maintenance.tf", "maintenance_scheduler"):
        for a in st["actions"]:
            granted.setdefault(tp.unquote(a), set()).update(st["resources"])
    assert granted == {
        "lambda:InvokeFunction": {'${var.function_arns["transform"]}'},
        "sqs:SendMessage": {"${aws_sqs_queue.maintenance_dlq.arn}"},
    }, granted
    # The trust policy: Scheduler of this account, schedules of the schedule's group only.
    (trust,) = _statements("orchestration/maintenance.tf", "maintenance_scheduler_assume")
    assert [tp.unquote(i) for i in trust["principals"][0]["identifiers"]] == ["scheduler.amazonaws.com"]
    conditions = {tp.unquote(c["variable"]): [tp.unquote(v) for v in c["values"]] for c in trust["condition"]}
    assert conditions["aws:SourceAccount"] == ["${local.account_id}"]
    (source_arn,) = conditions["aws:SourceArn"]
    group = schedule_body["group_name"]
    assert source_arn.endswith(":schedule-group/" + group), (source_arn, group)
    assert tp.unquote(tp.locals_of(ORCHESTRATION)["maintenance_schedule_group"]) == "default"


def _transform_statements() -> list[dict]:
    return tp.locals_of(tp.PIPELINE_DIR)["function_statements"]['"transform"']


TRANSFORM_ZONE = '${local.zones["transform_zone"]}'


def test_transform_role_deletes_and_lists_only_below_zone_prefixes():
    """The orphan file removal lists transform_zone/ and deletes there. Delete is granted on
    transform_zone/* only; listing is prefix-scoped (never the whole bucket); object versions
    are never deleted, so a wrongly removed file stays recoverable as a noncurrent version."""
    deletes, lists = set(), []
    for st in _transform_statements():
        actions = {tp.unquote(a) for a in st["actions"]}
        assert not actions & {"s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning"}, st
        if "s3:DeleteObject" in actions:
            deletes |= {tp.unquote(r) for r in st["resources"]}
        if "s3:ListBucket" in actions:
            lists.append(st)
    assert deletes == {"${local.bucket_arn}/" + TRANSFORM_ZONE + "*"}, deletes

    assert lists, "transform cannot list the transform zone"
    prefixes = set()
    for st in lists:
        assert [tp.unquote(r) for r in st["resources"]] == ["${local.bucket_arn}"], st
        (condition,) = st["conditions"]
        assert (tp.unquote(condition["test"]), tp.unquote(condition["variable"])) == ("StringLike", "s3:prefix"), condition
        prefixes |= {tp.unquote(v) for v in condition["values"]}
    assert TRANSFORM_ZONE + "*" in prefixes
    for p in prefixes:
        assert re.fullmatch(r'\$\{local\.zones\["[a-z_]+"\]\}\*', p), f"listing not below a zone prefix: {p}"

    # local.zones are the data lake's zone prefixes, each ending with "/": transform_zone/* can
    # match no sibling such as transform_zone_old/.
    assert tp.locals_of(tp.TF_DIR)["zones"] == "${module.data_lake.zone_prefixes}"
    assert tp.blocks(tp.TF_DIR, "module")["pipeline"]["zones"] == "${local.zones}"
    assert tp.locals_of(tp.PIPELINE_DIR)["zones"] == "${var.zones}"
    value = tp.blocks(tp.MODULES_DIR / "data_lake", "output")["zone_prefixes"]["value"]
    assert re.search(r'=> "\$\{local\.prefix\}\$\{z\}/"', value), value


def test_transform_role_may_send_to_its_on_failure_destination():
    granted = [st for st in _transform_statements() if '"sqs:SendMessage"' in st["actions"]]
    assert [st["resources"] for st in granted] == [["${module.orchestration.maintenance_dlq_arn}"]], granted


# ------------------------------------------------------------------ the function and the docs
MAINTENANCE_RS = tp.REPO_ROOT / "shared" / "src" / "transform" / "maintenance.rs"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_payload_matches_the_functions_maintenance_request():
    """The payload deserializes into shared/src/transform/maintenance.rs's `Maintenance`: serde
    tag `maintenance`, variant names in snake_case, unknown fields denied, older_than_hours a u64
    (so Terraform must send an integer); and the Terraform floor is at least the function's."""
    if not MAINTENANCE_RS.exists():
        pytest.skip("transform's maintenance mode (shared/src/transform/maintenance.rs) is not in the tree")
    src = MAINTENANCE_RS.read_text().split("#[cfg(test)]", 1)[0]
    m = re.search(r"#\[serde\(([^)]*)\)\]\s*pub enum Maintenance \{(.*?)\n\}", src, re.S)
    assert m, "pub enum Maintenance with a #[serde(...)] attribute not found in maintenance.rs"
    attrs, body = m.group(1), m.group(2)
    assert re.search(r'tag = "maintenance"', attrs) and 'rename_all = "snake_case"' in attrs, attrs
    variants = {
        _snake(name): dict(re.findall(r"(\w+): (\w+)", fields))
        for name, fields in re.findall(r"(\w+) \{([^}]*)\}", body)
    }
    fields = payload_fields()
    mode = tp.unquote(fields["maintenance"])
    assert mode in variants, f"transform knows {sorted(variants)}, the schedule sends {mode}"
    expected = set(variants[mode]) | {"maintenance"}
    assert "deny_unknown_fields" in attrs and set(fields) == expected, (sorted(fields), sorted(expected))
    assert variants[mode]["older_than_hours"] == "u64"
    for directory in (tp.TF_DIR, tp.PIPELINE_DIR, ORCHESTRATION):
        (validation,) = tp.blocks(directory, "variable")[AGE_VAR]["validation"]
        assert "floor(" in validation["condition"], f"{directory.name}: {AGE_VAR} must be validated an integer (u64)"
    floor = re.search(r"MIN_SAFETY_AGE: Duration = Duration::from_secs\((\d+)\)", src)
    assert floor, "MIN_SAFETY_AGE not found in maintenance.rs"
    assert 24 * 3600 >= int(floor.group(1)), "the Terraform floor (24 h) is below the function's own"
    for sample in sorted((tp.REPO_ROOT / "events").glob("*.json")):
        data = json.loads(sample.read_text())
        if isinstance(data, dict) and "maintenance" in data:
            assert set(data) == set(fields) and data["maintenance"] == mode, sample.name


def test_readme_documents_the_maintenance_schedule():
    readme = (tp.TF_DIR / "README.md").read_text()
    for needle in ('"maintenance": "remove_orphan_files"', "older_than_hours", AGE_VAR,
                   "orphan_files_cleanup_enabled", "orphan_files_schedule_expression", "maintenance_dlq_url"):
        assert needle in readme, f"terraform/README.md does not mention {needle}"


def test_a_removed_file_stays_recoverable_as_documented():
    """Deleting in a versioned bucket keeps a noncurrent version; the lifecycle expires those
    after noncurrent_version_expiration_days, the window the README promises."""
    data_lake = tp.MODULES_DIR / "data_lake"
    versioning = tp.resources(data_lake, "aws_s3_bucket_versioning")["lake"]
    assert tp.unquote(versioning["versioning_configuration"][0]["status"]) == "Enabled"
    rules = tp.resources(data_lake, "aws_s3_bucket_lifecycle_configuration")["lake"]["rule"]
    (noncurrent,) = [r for r in rules if "noncurrent_version_expiration" in r]
    assert noncurrent["filter"] == [{"__is_block__": True}] or noncurrent["filter"] == [{}], noncurrent["filter"]
    assert "noncurrent_version_expiration_days" not in tp.blocks(tp.TF_DIR, "module")["data_lake"]
    days = tp.variable_default(data_lake, "noncurrent_version_expiration_days")
    section = (tp.TF_DIR / "README.md").read_text().split("### Orphan file removal", 1)[1].split("\n## ", 1)[0]
    assert f"noncurrent version for {days} days" in section
