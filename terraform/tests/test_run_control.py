"""run-control in the Terraform: one per pipeline (modules/pipeline), the settings it gets, what
its role may do, and the catch_up_max_windows setting. How the state machine calls it (the
catch-up plan, the run reports): test_state_machine.py; its alarms: test_operations.py."""

from __future__ import annotations

import re

import pytest

import tfparse as tp
from test_workspace import function_arns_passed, iam_matches, redshift_data_statements

TWO = {"deftunes": {}, "sparkify": {}}
BUCKET_ARN = "arn:aws:s3:::deftunes-lake-123456789012-us-east-1"


def run_control_module() -> dict:
    return tp.lambda_modules()["run_control"]


# ------------------------------------------------------------------ one per pipeline
def test_every_pipeline_deploys_its_run_control_and_the_state_machine_gets_it():
    module = run_control_module()
    assert tp.lambda_module_dir("run_control") == tp.PIPELINE_DIR
    assert tp.crate_of_module(module) == "run-control"
    assert "count" not in module and "for_each" not in module, "files-only pipelines report their runs too"
    assert tp.unquote(module["function_name"]) == "${var.settings.name}-run-control"
    assert function_arns_passed()["run-control"] == "${module.run_control.function_arn}"
    # Its name is in the pipeline's function_names: the operations module alarms on every one.
    assert "module.run_control.function_name" in tp.blocks(tp.PIPELINE_DIR, "output")["function_names"]["value"]
    assert tp.definition_vars()["run_control_function_arn"] == '${var.function_arns["run-control"]}'
    # The orchestration refuses function_arns without it (the template calls it).
    (condition,) = [v["condition"] for v in tp.blocks(tp.MODULES_DIR / "orchestration", "variable")["function_arns"]["validation"]]
    arns = {c: f"arn:aws:lambda:us-east-1:123456789012:function:deftunes-{c}" for c in ("transform", "redshift-setup", "run-control")}
    assert tp.console_eval(condition[2:-1], {"function_arns": arns}) is True
    assert tp.console_eval(condition[2:-1], {"function_arns": {k: v for k, v in arns.items() if k != "run-control"}}) is False


# ------------------------------------------------------------------ its settings
RUN_CONTROL_ENV = {"LAKE_URI", "CATALOG", "ICEBERG_WAREHOUSE", "ICEBERG_NAMESPACE", "PIPELINE", "WINDOW_GRANULARITY",
                   "WINDOW_TIMEZONE", "CATCH_UP_MAX_WINDOWS", "REPORTS_PREFIX", "STATE_PREFIX",
                   "REDSHIFT_WORKGROUP", "REDSHIFT_DATABASE", "REDSHIFT_SECRET_ARN", "SERVING_SCHEMA", "BI_SCHEMA",
                   "CHART_TIMEOUT_SECS"}
# The report's charts query the BI views in the warehouse, with the schemas, that redshift-setup sets up.
SHARED_WITH_REDSHIFT_SETUP = ("REDSHIFT_WORKGROUP", "REDSHIFT_DATABASE", "REDSHIFT_SECRET_ARN", "SERVING_SCHEMA", "BI_SCHEMA")


def test_run_control_gets_exactly_its_settings():
    """The lake and catalog exactly as transform gets them, the window settings exactly as
    api-extract gets them (a scheduled run's own period is the one the extracts would take),
    the catch-up cap, the two lake-relative prefixes, and the warehouse and schemas exactly as
    redshift-setup gets them with a timeout per chart statement (the report's BI charts);
    nothing else."""
    module = run_control_module()
    env = tp.module_environment(module)
    assert set(env) == RUN_CONTROL_ENV
    transform = tp.lambda_modules()["transform"]["environment"]
    for name in ("LAKE_URI", "CATALOG", "ICEBERG_WAREHOUSE", "ICEBERG_NAMESPACE", "PIPELINE"):
        assert env[name] == transform[name], name
    api = tp.lambda_modules()["api_extract"]["environment"]
    for name in ("WINDOW_GRANULARITY", "WINDOW_TIMEZONE"):
        assert env[name] == api[name], name
    assert env["CATCH_UP_MAX_WINDOWS"] == "${tostring(var.settings.catch_up_max_windows)}"
    assert env["REPORTS_PREFIX"] == "${var.settings.run_control_prefixes.reports}"
    assert env["STATE_PREFIX"] == "${var.settings.run_control_prefixes.state}"
    setup = tp.lambda_modules()["redshift_setup"]["environment"]
    for name in SHARED_WITH_REDSHIFT_SETUP:
        assert env[name] == setup[name], name
    assert (env["REDSHIFT_WORKGROUP"], env["REDSHIFT_DATABASE"], env["REDSHIFT_SECRET_ARN"], env["SERVING_SCHEMA"], env["BI_SCHEMA"]) == (
        "${var.redshift_workgroup_name}", "${var.redshift_database}", "${var.redshift_admin_secret_arn}",
        "${var.settings.serving_schema}", "${var.settings.bi_schema}")
    assert tp.unquote(env["CHART_TIMEOUT_SECS"]) == "60"
    assert "optional_environment" not in module


def test_chart_statements_fit_in_run_control_timeout():
    """The report's chart statements (two, run concurrently, each cancelled after
    CHART_TIMEOUT_SECS) fit in the function's timeout, even one after the other, with the rest of
    the report (tables' rows, quality reports, the writes) to spare."""
    module = run_control_module()
    chart_timeout = int(tp.unquote(tp.module_environment(module)["CHART_TIMEOUT_SECS"]))
    assert 0 < 2 * chart_timeout <= int(module["timeout"]) // 2, (chart_timeout, module["timeout"])


def rust_state_zone() -> str:
    src = (tp.REPO_ROOT / "shared" / "src" / "extract" / "songs.rs").read_text()
    return re.search(r'pub const STATE_ZONE: &str = "([^"]+)";', src).group(1)


@pytest.mark.parametrize("lake_key_prefix", ["", "lake/"])
def test_the_prefixes_it_gets_are_the_lake_relative_forms_of_what_its_role_may_use(lake_key_prefix):
    """LAKE_URI already ends with the lake prefix, so REPORTS_PREFIX and STATE_PREFIX are relative
    to it, and the role's resources are the same places as full keys (modules/pipeline_settings,
    evaluated by Terraform): reports/runs/<pipeline>, and the state folder where songs-extract
    keeps its watermarks (state/<spec name>, the name its Rust code uses)."""
    assert "trimsuffix(local.prefix" in tp.blocks(tp.MODULES_DIR / "data_lake", "output")["lake_uri"]["value"]
    planned = tp.plan_settings(TWO, lake_key_prefix=lake_key_prefix)
    for k, s in planned.items():
        spec_name = tp.deploy_json(k)["name"]
        assert s["run_control_prefixes"] == {"reports": f"reports/runs/{k}", "state": f"{rust_state_zone()}/{spec_name}"}, k
        assert s["reports_prefix"] == lake_key_prefix + s["run_control_prefixes"]["reports"], k
        assert s["state_prefix"] == lake_key_prefix + s["run_control_prefixes"]["state"] + "/", k
        # Beside the map results (another folder of reports/), never inside a zone.
        assert s["map_results_prefix"] == f"{lake_key_prefix}reports/map-results/{k}"


# ------------------------------------------------------------------ its role
def resolve(text: str, pipeline: str = "deftunes") -> str:
    """A resource or condition value of modules/pipeline with its references filled in, for a
    lake without a key prefix."""
    values = {
        "${local.bucket_arn}": BUCKET_ARN,
        "${var.settings.reports_prefix}": f"reports/runs/{pipeline}",
        "${var.settings.state_prefix}": f"state/{pipeline}/",
        "${var.settings.map_results_prefix}": f"reports/map-results/{pipeline}",
        '${local.zones["transform_zone"]}': "transform_zone/",
        '${local.zones["quality"]}': "quality/",
    }
    text = tp.unquote(text)
    for ref, value in values.items():
        text = text.replace(ref, value)
    assert "${" not in text, text
    return text


def run_control_statements() -> dict[str, dict]:
    statements = tp.locals_of(tp.PIPELINE_DIR)["function_statements"]['"run-control"']
    return {tp.unquote(st["sid"]): st for st in statements}


def test_run_control_role_grants_exactly_what_it_needs():
    statements = run_control_statements()
    assert set(statements) == {"WriteRunReports", "CatchUpFrontier", "FindRunControlObjects", "ReadSilverTables",
                               "ReadTableMetadata", "ReadQualityReports"}
    actions = {sid: [tp.unquote(a) for a in st["actions"]] for sid, st in statements.items()}
    assert actions == {
        "WriteRunReports": ["s3:GetObject", "s3:PutObject"],
        "CatchUpFrontier": ["s3:GetObject", "s3:PutObject"],
        "FindRunControlObjects": ["s3:ListBucket"],
        "ReadSilverTables": ["glue:GetDatabase", "glue:GetTable", "glue:GetTables"],
        "ReadTableMetadata": ["s3:GetObject"],
        "ReadQualityReports": ["s3:GetObject"],
    }
    resources = {sid: [resolve(r) for r in st["resources"]] for sid, st in statements.items() if sid != "ReadSilverTables"}
    assert resources == {
        "WriteRunReports": [f"{BUCKET_ARN}/reports/runs/deftunes/*"],
        "CatchUpFrontier": [f"{BUCKET_ARN}/state/deftunes/last-successful-window.json"],
        "FindRunControlObjects": [BUCKET_ARN],
        "ReadTableMetadata": [f"{BUCKET_ARN}/transform_zone/*"],
        "ReadQualityReports": [f"{BUCKET_ARN}/quality/*"],
    }
    # Listing only where it reads objects that may be missing (then 404, not 403): the frontier
    # (none on the first deployment), its reports, the quality reports; not the watermarks.
    (condition,) = statements["FindRunControlObjects"]["conditions"]
    assert (tp.unquote(condition["test"]), tp.unquote(condition["variable"])) == ("StringLike", "s3:prefix")
    listed = [resolve(v) for v in condition["values"]]
    assert listed == ["state/deftunes/last-successful-window.json", "reports/runs/deftunes/*", "quality/*"]
    assert not any(iam_matches(v, "state/deftunes/songs.watermark.json") for v in listed)
    assert not any(iam_matches(v, "reports/runs/sparkify/x/report.json") for v in listed)
    # The Glue catalog as transform reads it (its database and its tables), read-only.
    transform = {tp.unquote(st["sid"]): st for st in tp.locals_of(tp.PIPELINE_DIR)["function_statements"]['"transform"']}
    assert statements["ReadSilverTables"]["resources"] == transform["SilverTables"]["resources"] == [
        "${module.catalog.glue_arns.catalog}", "${module.catalog.glue_arns.database}", "${module.catalog.glue_arns.tables}"]
    assert set(actions["ReadSilverTables"]) < {tp.unquote(a) for a in transform["SilverTables"]["actions"]}
    # Its Iceberg metadata and the quality reports where transform's grants put them.
    assert statements["ReadTableMetadata"]["resources"] == transform["WriteWarehouse"]["resources"]
    assert statements["ReadQualityReports"]["resources"][0] in transform["WriteQuarantineAndQuality"]["resources"]

    # The windows' results of its own pipeline (only with extracts: a files-only one has no Map),
    # and the lake's key when it has one.
    map_results = tp.locals_of(tp.PIPELINE_DIR)["map_results_read_statements"]
    assert map_results.startswith("${length(var.settings.extracts) > 0 ? [{") and map_results.endswith("}] : []}")
    assert 'sid = "ReadMapResults", actions = ["s3:GetObject"]' in map_results
    assert 'resources = ["${local.bucket_arn}/${var.settings.map_results_prefix}/*"]' in map_results
    assert run_control_module()["policy_statements"] == (
        '${concat(local.function_statements["run-control"], local.redshift_data_statements["run-control"], '
        'local.map_results_read_statements, local.lake_kms_statements)}')


def test_run_control_queries_redshift_with_the_statements_of_redshift_setup_and_reads_results():
    """The BI charts: ExecuteStatement on the workgroup, the admin secret, and DescribeStatement,
    GetStatementResult and CancelStatement on the statements its role started, built from the
    same local as redshift-setup's, whose statements stay as they were (no GetStatementResult).
    Sids stay unique in each role's policy (test_workspace checks the statements themselves)."""
    evaluated = redshift_data_statements()
    own = {st["sid"]: st for st in evaluated["run-control"]}
    setup = {st["sid"]: st for st in evaluated["redshift-setup"]}
    assert list(own) == list(setup) == ["RunStatements", "AdminSecret", "OwnStatements"]
    for sid in ("RunStatements", "AdminSecret"):
        assert own[sid] == setup[sid], sid
    assert own["OwnStatements"]["actions"] == [
        "redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"]
    assert setup["OwnStatements"]["actions"] == ["redshift-data:DescribeStatement", "redshift-data:CancelStatement"]
    assert own["OwnStatements"]["resources"] == setup["OwnStatements"]["resources"] == ["*"]
    assert own["OwnStatements"]["conditions"] == setup["OwnStatements"]["conditions"] == [
        {"test": "StringEquals", "variable": "redshift-data:statement-owner-iam-userid", "values": ["${aws:userid}"]}]
    # Unique sids in run-control's whole policy (Terraform refuses duplicates in a policy document).
    sids = [*run_control_statements(), *own, "ReadMapResults", "LakeKey", "WriteOwnLogs", "XRayTraces"]
    assert len(sids) == len(set(sids)), sids


@pytest.mark.parametrize("action,key,allowed", [
    ("s3:PutObject", "reports/runs/deftunes/test-0f5b7a2e/report.html", True),
    ("s3:GetObject", "reports/runs/deftunes/test-0f5b7a2e/report.json", True),
    ("s3:PutObject", "state/deftunes/last-successful-window.json", True),
    ("s3:GetObject", "transform_zone/deftunes_transform/users/metadata/00001-a.metadata.json", True),
    ("s3:GetObject", "quality/users/ingest_on=2020-01-01/part-00000.json", True),
    ("s3:PutObject", "quality/users/ingest_on=2020-01-01/part-00000.json", False),
    ("s3:GetObject", "quarantine/users/x.jsonl", False),
    ("s3:PutObject", "reports/runs/sparkify/test-1/report.json", False),          # another pipeline's reports
    ("s3:PutObject", "reports/runs/deftunes-old/x/report.json", False),           # a sibling folder
    ("s3:PutObject", "reports/map-results/deftunes/9d2e7b/manifest.json", False),  # the Map's results: read only
    ("s3:PutObject", "state/deftunes/songs.watermark.json", False),               # songs-extract's watermark
    ("s3:GetObject", "state/deftunes/songs.watermark.json", False),
    ("s3:PutObject", "state/sparkify/last-successful-window.json", False),
    ("s3:PutObject", "transform_zone/deftunes_transform/users/metadata/x.json", False),
    ("s3:DeleteObject", "reports/runs/deftunes/test-0f5b7a2e/report.json", False),
    ("s3:GetObject", "landing_zone/api/users/ingest_on=2020-01-01/part-00000.jsonl", False),
])
def test_what_run_control_may_do_in_the_lake(action, key, allowed):
    """IAM's matching of the role's resources (the deftunes pipeline, no lake prefix, without the
    Map's results statement: test_run_control_role_grants_exactly_what_it_needs)."""
    arn = f"{BUCKET_ARN}/{key}"
    granted = any(action in [tp.unquote(a) for a in st["actions"]] and any(iam_matches(resolve(r), arn) for r in st["resources"])
                  for st in run_control_statements().values())
    assert granted is allowed


# ------------------------------------------------------------------ catch_up_max_windows
def _conditions(directory, variable):
    return [v["condition"] for v in tp.blocks(directory, "variable")[variable].get("validation", [])]


def rust_catch_up_limits() -> tuple[int, int]:
    """(default, maximum) of CATCH_UP_MAX_WINDOWS in run-control's config (shared/src)."""
    found = {}
    for path in (tp.REPO_ROOT / "shared" / "src").rglob("*.rs"):
        for name, value in re.findall(r"pub const (DEFAULT_CATCH_UP_MAX_WINDOWS|MAX_CATCH_UP_MAX_WINDOWS): u64 = ([0-9_]+);",
                                      path.read_text()):
            found[name] = int(value.replace("_", ""))
    assert set(found) == {"DEFAULT_CATCH_UP_MAX_WINDOWS", "MAX_CATCH_UP_MAX_WINDOWS"}, (
        "run-control's CATCH_UP_MAX_WINDOWS default and maximum not found in shared/src: the Terraform setting must "
        f"accept exactly what the function accepts (found {found})")
    return found["DEFAULT_CATCH_UP_MAX_WINDOWS"], found["MAX_CATCH_UP_MAX_WINDOWS"]


@pytest.mark.parametrize("value,ok", [(1, True), (400, True), (2000, True), (0, False), (-1, False), (2.5, False), (2001, False)])
def test_catch_up_max_windows_is_validated(value, ok):
    """Terraform evaluates each validation (the root variable, the pipeline_settings defaults, and a
    pipeline's own value in the root's and the module's pipelines) on the value."""
    (root,) = _conditions(tp.TF_DIR, "catch_up_max_windows")
    assert tp.console_eval(root[2:-1], {"catch_up_max_windows": value}) is ok
    defaults = [c for c in _conditions(tp.MODULES_DIR / "pipeline_settings", "defaults") if "catch_up_max_windows" in c]
    (condition,) = defaults
    assert tp.console_eval(condition[2:-1], {"defaults": {"catch_up_max_windows": value}}) is ok
    for directory in (tp.TF_DIR, tp.MODULES_DIR / "pipeline_settings"):
        (condition,) = [c for c in _conditions(directory, "pipelines") if "catch_up_max_windows" in c]
        pipelines = {"deftunes": {"catch_up_max_windows": value}, "sparkify": {"catch_up_max_windows": None}}
        assert tp.console_eval(condition[2:-1], {"pipelines": pipelines}) is ok, directory.name


def test_catch_up_max_windows_accepts_what_run_control_accepts():
    """The default and the upper bound are the function's (it refuses a larger CATCH_UP_MAX_WINDOWS
    at start-up: the planned windows travel in the execution's state, 256 KiB at most)."""
    default, maximum = rust_catch_up_limits()
    assert tp.variable_default(tp.TF_DIR, "catch_up_max_windows") == default
    (root,) = _conditions(tp.TF_DIR, "catch_up_max_windows")
    assert tp.console_eval(root[2:-1], {"catch_up_max_windows": maximum}) is True
    assert tp.console_eval(root[2:-1], {"catch_up_max_windows": maximum + 1}) is False


def test_catch_up_max_windows_reaches_each_run_control():
    """The top-level value is every pipeline's default; a pipeline's own value overrides it."""
    assert tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["defaults"]["catch_up_max_windows"] == "${var.catch_up_max_windows}"
    planned = tp.plan_settings({"deftunes": {"catch_up_max_windows": 30}, "sparkify": {}}, catch_up_max_windows=100)
    assert (planned["deftunes"]["catch_up_max_windows"], planned["sparkify"]["catch_up_max_windows"]) == (30, 100)
    assert tp.plan_settings({"deftunes": {}})["deftunes"]["catch_up_max_windows"] == tp.variable_default(tp.TF_DIR, "catch_up_max_windows")
    settings_type = tp.blocks(tp.PIPELINE_DIR, "variable")["settings"]["type"]
    assert all(f in settings_type for f in ("catch_up_max_windows", "reports_prefix", "run_control_prefixes"))


# ------------------------------------------------------------------ README
def test_readme_explains_catch_up_and_run_reports():
    readme = (tp.TF_DIR / "README.md").read_text()
    section = readme.split("### Catch-up and run reports", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    text = " ".join(section.split())
    for needle in ("last-successful-window.json", "catch_up_max_windows", "first deployment", "capped",
                   "repeated", "reports/runs/<pipeline>/<execution name>/report.json", "report.html",
                   "aws s3 cp", "aws s3 presign", "report_error", "Write failure report", "retry_policy"):
        assert needle in text, needle
    variables = readme.split("| variable | what |", 1)[1].split("\n\n", 1)[0]
    assert "`catch_up_max_windows`" in variables
