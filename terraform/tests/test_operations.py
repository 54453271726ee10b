"""Operating the pipelines: the alarm topic, the CloudWatch alarms and dashboards, X-Ray, Athena.

Three layers:
- modules/operations_settings (no provider) applied by Terraform itself with two pipelines
  (deftunes, sparkify), fed what the root feeds it: the names modules/pipeline_settings plans,
  the function and queue names modules/pipeline and modules/orchestration give;
- the wiring of modules/operations and of the root, read from the HCL;
- the whole root planned by Terraform with a local AWS provider (plan JSON) when one is found,
  as test_pipelines.py's `terraform validate`, with a stand-in STS endpoint for the account id."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

import tfparse as tp

OPERATIONS = tp.MODULES_DIR / "operations"
SETTINGS = tp.MODULES_DIR / "operations_settings"
ORCHESTRATION = tp.MODULES_DIR / "orchestration"
TWO = {"deftunes": {}, "sparkify": {}}
ACCOUNT = tp.PLAN_ACCOUNT
REGION = tp.PLAN_REGION
ALARM_ARN_PREFIX = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"

# The metric contract of the functions' Embedded Metric Format lines (what the Rust side writes).
NAMESPACE = "DeFtunes"
CONTRACT = {
    "namespace": NAMESPACE,
    "transform": {
        "dimension_sets": [["Pipeline", "Table"], ["Pipeline"]],
        "metrics": {"RecordsIn": "Count", "RecordsCommitted": "Count", "RecordsUnchanged": "Count",
                    "RecordsQuarantined": "Count", "Bytes": "Bytes", "DurationMs": "Milliseconds",
                    "DatasetRuleFailures": "Count"},
    },
    "extract": {
        "dimension_sets": [["Pipeline", "Source"], ["Pipeline"]],
        "metrics": {"RecordsExtracted": "Count", "Bytes": "Bytes", "DurationMs": "Milliseconds"},
    },
}


# ------------------------------------------------------------------ what the root feeds the settings
def queue_names(name_prefix: str) -> dict[str, str]:
    """{role: queue name} of the pipeline's dead-letter queues, named as modules/orchestration names them."""
    queues = tp.resources(ORCHESTRATION, "aws_sqs_queue")
    return {role: tp.unquote(queues[f"{role}_dlq"]["name"]).replace("${var.name}", name_prefix)
            for role in ("transform", "maintenance")}


def state_machine_arn(name_prefix: str) -> str:
    """The state machine's ARN: its name is local.state_machine_name (its role's policy builds the
    same ARN from it)."""
    body = tp.resources(ORCHESTRATION, "aws_sfn_state_machine")["pipeline"]
    assert body["name"] == "${local.state_machine_name}", body["name"]
    name = tp.unquote(tp.locals_of(ORCHESTRATION)["state_machine_name"])
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:" + name.replace("${var.name}", name_prefix)


def function_names(settings: dict) -> dict[str, str]:
    """{crate: function name} of what modules/pipeline deploys for these settings: transform and
    redshift-setup, the extract functions only where the pipeline's extracts call them."""
    out = {}
    for name, body in tp.blocks(tp.PIPELINE_DIR, "module").items():
        crate = tp.crate_of_module(body)
        if crate is None:
            continue
        if "count" in body and crate not in settings["extract_functions"]:
            continue
        out[crate] = tp.function_name_of(body, settings["name"])
    return out


def settings_inputs(planned: dict, **overrides) -> dict:
    pipelines = {
        k: {
            "name": s["name"],
            "glue_database": s["glue_database_name"],
            "tables": s["tables"],
            "athena_queries": s["athena_queries"],
            "sources": [e["source"] for e in s["extracts"]],
            "function_names": function_names(s),
            "state_machine_arn": state_machine_arn(s["name"]),
            "dead_letter_queues": queue_names(s["name"]),
        }
        for k, s in planned.items()
    }
    demo = tp.lambda_modules()["api_emulator"]
    inputs = {
        "pipelines": pipelines,
        "functions": {"api-emulator": tp.function_name_of(demo)},
        "region": REGION,
        "alarm_arn_prefix": ALARM_ARN_PREFIX,
    }
    inputs.update(overrides)
    return inputs


@pytest.fixture(scope="module")
def planned():
    return tp.plan_settings(TWO)


@pytest.fixture(scope="module")
def inputs(planned):
    return settings_inputs(planned)


@pytest.fixture(scope="module")
def ops(inputs):
    return tp.apply_module(SETTINGS, inputs)


def policy_documents(directory: Path) -> dict[str, dict]:
    """The aws_iam_policy_document data sources of a module, by name."""
    docs = {}
    for parsed in tp.parse_dir(directory).values():
        for entry in parsed.get("data", []):
            for kind, named in entry.items():
                if tp.unquote(kind) == "aws_iam_policy_document":
                    docs.update({tp.unquote(n): body for n, body in named.items()})
    return docs


def plain(value):
    """python-hcl2's value without its block markers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def alarms_by_name(ops) -> dict[str, dict]:
    return {a["alarm_name"]: a for a in ops["alarms"].values()}


def simple_alarm(alarm: dict, namespace: str, metric: str, dimensions: dict, statistic: str):
    assert (alarm["namespace"], alarm["metric_name"], alarm["dimensions"], alarm["statistic"]) == (
        namespace, metric, dimensions, statistic), alarm
    assert alarm["metric_queries"] == []
    assert (alarm["comparison_operator"], alarm["threshold"], alarm["evaluation_periods"]) == ("GreaterThanThreshold", 0, 1), alarm
    assert alarm["treat_missing_data"] == "notBreaching", alarm
    assert alarm["period"] == 300 and alarm["description"], alarm


# ------------------------------------------------------------------ alarms (operations_settings)
def test_every_dlq_state_machine_and_function_of_two_pipelines_has_its_alarms(ops, inputs):
    alarms = list(ops["alarms"].values())
    expected = set()
    for k, p in inputs["pipelines"].items():
        assert set(p["dead_letter_queues"]) == {"transform", "maintenance"}
        for queue in p["dead_letter_queues"].values():
            (alarm,) = [a for a in alarms if a["dimensions"] == {"QueueName": queue}]
            simple_alarm(alarm, "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue}, "Maximum")
            expected.add(alarm["alarm_name"])
        for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
            (alarm,) = [a for a in alarms if a["metric_name"] == metric and a["dimensions"] == {"StateMachineArn": p["state_machine_arn"]}]
            simple_alarm(alarm, "AWS/States", metric, {"StateMachineArn": p["state_machine_arn"]}, "Sum")
            expected.add(alarm["alarm_name"])
        for function in p["function_names"].values():
            for metric in ("Errors", "Throttles"):
                (alarm,) = [a for a in alarms if a["metric_name"] == metric and a["dimensions"] == {"FunctionName": function}]
                simple_alarm(alarm, "AWS/Lambda", metric, {"FunctionName": function}, "Sum")
                expected.add(alarm["alarm_name"])
    # The demo source is no pipeline's function, and alarms too.
    for metric in ("Errors", "Throttles"):
        (alarm,) = [a for a in alarms if a["metric_name"] == metric and a["dimensions"] == {"FunctionName": "deftunes-api-emulator"}]
        expected.add(alarm["alarm_name"])
    # Two pipelines with what each deploys: sparkify has no extract function; both have run-control.
    assert set(inputs["pipelines"]["deftunes"]["function_names"]) == {"transform", "redshift-setup", "run-control",
                                                                     "api-extract", "songs-extract"}
    assert set(inputs["pipelines"]["sparkify"]["function_names"]) == {"transform", "redshift-setup", "run-control"}
    # Nothing else but the data alarms (data quality and quarantine rate, one each per pipeline).
    data = {a["alarm_name"] for a in alarms} - expected
    assert data == {"deftunes-data-quality-failed", "deftunes-quarantine-rate",
                    "deftunes-sparkify-data-quality-failed", "deftunes-sparkify-quarantine-rate"}, data
    assert len(alarms) == len(expected) + 4 == 2 * (2 + 3) + 2 * (5 + 3 + 1) + 4


def test_alarm_names_follow_the_resources_they_watch(ops, inputs):
    names = alarms_by_name(ops)
    for p in inputs["pipelines"].values():
        state_machine = p["state_machine_arn"].rsplit(":", 1)[1]
        for suffix in ("executions-failed", "executions-timed-out", "executions-aborted"):
            assert f"{state_machine}-{suffix}" in names
        for queue in p["dead_letter_queues"].values():
            assert f"{queue}-not-empty" in names
        for function in p["function_names"].values():
            assert {f"{function}-errors", f"{function}-throttles"} <= set(names)
    assert len(names) == len(ops["alarms"])


def test_the_metric_contract_is_the_agreed_one(ops):
    assert ops["metric_contract"] == CONTRACT


def test_data_quality_alarm_reads_the_contract(ops, inputs):
    for k, p in inputs["pipelines"].items():
        alarm = alarms_by_name(ops)[f"{p['name']}-data-quality-failed"]
        simple_alarm(alarm, NAMESPACE, "DatasetRuleFailures", {"Pipeline": k}, "Sum")
        assert ops["alarms"][f"{k}/data-quality"] == alarm


def _metric_math(expression: str, **series) -> float | None:
    """Evaluates the metric math of one datapoint: IF (only the chosen branch, as CloudWatch picks
    per datapoint), FILL, comparisons and arithmetic. A missing value (None) makes the result
    missing, as CloudWatch drops the datapoint; FILL replaces it."""
    from test_workspace import split_top

    class Missing(Exception):
        pass

    def translate(code: str) -> str:
        out, i = [], 0
        while i < len(code):
            m = re.compile(r"\b(IF|FILL)\(").search(code, i)
            if not m:
                out.append(code[i:])
                break
            out.append(code[i:m.start()])
            depth, j = 0, m.end() - 1
            while True:
                depth += {"(": 1, ")": -1}.get(code[j], 0)
                if depth == 0:
                    break
                j += 1
            args = [translate(a) for a in split_top(code[m.end():j])]
            if m.group(1) == "IF":
                assert len(args) == 3, code
                out.append(f"(_if(lambda: {args[0]}, lambda: {args[1]}, lambda: {args[2]}))")
            else:
                assert len(args) == 2 and re.fullmatch(r"_v\((m\d+)\)", args[0]), code
                out.append(f"(_fill({args[0][3:-1]}, {args[1]}))")
            i = j + 1
        return "".join(out)

    def value(v):
        if v is None:
            raise Missing
        return v

    def _if(cond, a, b):
        return a() if cond() else b()

    def _fill(v, default):
        return default if v is None else v

    names = set(re.findall(r"[A-Za-z_]\w*", expression)) - {"IF", "FILL"}
    assert names <= set(series), f"{expression}: unknown names {names - set(series)}"
    code = translate(re.sub(r"\b(m\d+)\b", r"_v(\1)", expression))
    try:
        # One namespace (globals): the lambdas of IF see the series and helpers.
        return eval(code, {"__builtins__": {}, "_if": _if, "_fill": _fill, "_v": value, **series})  # noqa: S307
    except Missing:
        return None


def test_metric_math_evaluator():
    assert _metric_math("m1 / m2", m1=1, m2=4) == 0.25
    assert _metric_math("m1 / m2", m1=None, m2=4) is None
    assert _metric_math("FILL(m1, 0) / m2", m1=None, m2=4) == 0
    assert _metric_math("IF(m2 > 0, m1 / m2, 7)", m1=1, m2=0) == 7
    assert _metric_math("IF(m2 > 0, FILL(m1, 0) / m2, 0)", m1=None, m2=None) is None


def test_quarantine_rate_is_metric_math_over_the_contract(ops, inputs):
    period = tp.variable_default(tp.TF_DIR, "quarantine_rate_period_seconds")
    threshold = tp.variable_default(tp.TF_DIR, "quarantine_rate_threshold")
    assert (period, threshold) == (3600, 0.05)
    for k, p in inputs["pipelines"].items():
        alarm = ops["alarms"][f"{k}/quarantine-rate"]
        assert alarm["alarm_name"] == f"{p['name']}-quarantine-rate"
        assert alarm["namespace"] is None and alarm["metric_name"] is None and alarm["dimensions"] is None
        assert (alarm["comparison_operator"], alarm["threshold"]) == ("GreaterThanThreshold", threshold)
        assert alarm["treat_missing_data"] == "notBreaching"
        queries = {q["id"]: q for q in alarm["metric_queries"]}
        metrics = {q["metric"]["metric_name"]: q for q in queries.values() if q["metric"]}
        assert set(metrics) == {"RecordsQuarantined", "RecordsIn"}
        for q in metrics.values():
            assert q["metric"]["namespace"] == NAMESPACE and q["metric"]["metric_name"] in CONTRACT["transform"]["metrics"]
            assert q["metric"]["dimensions"] == {"Pipeline": k}
            assert (q["metric"]["stat"], q["metric"]["period"]) == ("Sum", period)
            assert q["return_data"] is False and q["expression"] is None
        (expr,) = [q for q in queries.values() if q["expression"]]
        assert expr["return_data"] is True and expr["metric"] is None
        quarantined, records_in = metrics["RecordsQuarantined"]["id"], metrics["RecordsIn"]["id"]
        assert re.search(rf"\b{quarantined}\b", expr["expression"]) and re.search(rf"\b{records_in}\b", expr["expression"])

        def rate(q, n):
            return _metric_math(expr["expression"], **{quarantined: q, records_in: n})

        # 10 of 100 quarantined breaches 5 %; 5 of 100 does not; no quarantined records is 0;
        # no records in at all is missing (not breaching), and so is a period with 0 records in.
        assert rate(10, 100) == pytest.approx(0.1) and rate(10, 100) > threshold
        assert rate(5, 100) == pytest.approx(0.05) and not rate(5, 100) > threshold
        assert rate(None, 100) == 0
        assert rate(None, None) is None and rate(3, None) is None
        assert rate(0, 0) == 0


def test_quarantine_threshold_and_period_follow_the_variables(planned):
    ops = tp.apply_module(SETTINGS, settings_inputs(planned, quarantine_rate_threshold=0.2, quarantine_rate_period_seconds=1800))
    alarm = ops["alarms"]["sparkify/quarantine-rate"]
    assert alarm["threshold"] == 0.2
    assert {q["metric"]["period"] for q in alarm["metric_queries"] if q["metric"]} == {1800}
    assert "20 %" in alarm["description"] and "30 minutes" in alarm["description"]
    # ... and the root passes them, through modules/operations, to the settings.
    root = tp.blocks(tp.TF_DIR, "module")["operations"]
    call = tp.blocks(OPERATIONS, "module")["settings"]
    for name in ("quarantine_rate_threshold", "quarantine_rate_period_seconds"):
        assert root[name] == call[name] == f"${{var.{name}}}", name


@pytest.mark.parametrize("value,ok", [(0.05, True), (0, True), (0.99, True), (1, False), (-0.01, False), (1.5, False)])
def test_quarantine_threshold_is_validated_as_a_share(value, ok):
    (validation,) = tp.blocks(tp.TF_DIR, "variable")["quarantine_rate_threshold"]["validation"]
    assert tp.console_eval(validation["condition"][2:-1], {"quarantine_rate_threshold": value}) is ok


@pytest.mark.parametrize("value,ok", [(None, True), ("ops@example.com", True), ("a.b+c@d.example.org", True),
                                      ("ops", False), ("ops@example", False), ("a b@example.com", False), ("", False)])
def test_alarm_email_is_validated(value, ok):
    (validation,) = tp.blocks(tp.TF_DIR, "variable")["alarm_email"]["validation"]
    assert tp.console_eval(validation["condition"][2:-1], {"alarm_email": value}) is ok


def test_two_pipelines_with_one_name_prefix_are_refused(planned):
    inputs = settings_inputs(planned)
    inputs["pipelines"]["sparkify"] = dict(inputs["pipelines"]["deftunes"])
    with pytest.raises(RuntimeError, match="Two alarms would have the same name"):
        tp.apply_module(SETTINGS, inputs)


# ------------------------------------------------------------------ dashboards
def _widget_metrics(widget) -> list[list]:
    return widget["properties"].get("metrics", [])


def _metric_rows(body) -> list[tuple]:
    """(namespace, metric, {dimension: value}) of every metric row of every widget."""
    out = []
    for w in body["widgets"]:
        for row in _widget_metrics(w):
            if isinstance(row[0], dict):
                continue
            plain = [x for x in row if not isinstance(x, dict)]
            out.append((plain[0], plain[1], dict(zip(plain[2::2], plain[3::2]))))
    return out


def test_a_dashboard_per_pipeline_of_the_contract_and_service_metrics(ops, inputs):
    assert set(ops["dashboards"]) == set(inputs["pipelines"])
    for k, p in inputs["pipelines"].items():
        dashboard = ops["dashboards"][k]
        assert dashboard["name"] == f"{p['name']}-pipeline"
        body = json.loads(dashboard["body"])
        rows = _metric_rows(body)
        own = [r for r in rows if r[0] == NAMESPACE]
        # Every DeFtunes metric is of the contract, on one of its dimension sets, for this pipeline.
        for _, metric, dims in own:
            family = "extract" if "Source" in dims or metric == "RecordsExtracted" else "transform"
            assert metric in CONTRACT[family]["metrics"], metric
            assert sorted(dims) in [sorted(s) for s in CONTRACT[family]["dimension_sets"]], (metric, dims)
            assert dims["Pipeline"] == k
        transform_metrics = {m for _, m, d in own if "Source" not in d}
        assert transform_metrics == set(CONTRACT["transform"]["metrics"]), transform_metrics
        for table in p["tables"]:
            assert any(d == {"Pipeline": k, "Table": table} for _, _, d in own), (k, table)
        extracted = {(m, d.get("Source")) for _, m, d in own if "Source" in d}
        assert extracted == {(m, s) for m in CONTRACT["extract"]["metrics"] for s in p["sources"]}, (k, extracted)
        # Lambda errors and duration of each of its functions, its state machine's executions, its DLQs.
        for function in p["function_names"].values():
            for metric in ("Errors", "Throttles", "Duration"):
                assert ("AWS/Lambda", metric, {"FunctionName": function}) in rows, (function, metric)
        for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
            assert ("AWS/States", metric, {"StateMachineArn": p["state_machine_arn"]}) in rows, metric
        for queue in p["dead_letter_queues"].values():
            assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue}) in rows
        # Nothing of another pipeline.
        others = {f for o, q in inputs["pipelines"].items() if o != k for f in q["function_names"].values()}
        assert not [r for r in rows if r[2].get("FunctionName") in others or r[2].get("Pipeline", k) != k]
        # The alarm widget lists exactly the pipeline's alarms.
        (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
        own_alarms = {a["alarm_name"] for key, a in ops["alarms"].items() if key.startswith(f"{k}/")}
        assert sorted(alarm_widget["properties"]["alarms"]) == sorted(ALARM_ARN_PREFIX + n for n in own_alarms)


def test_dashboard_quarantine_widget_is_the_alarms_expression(ops):
    for k, dashboard in ops["dashboards"].items():
        body = json.loads(dashboard["body"])
        (widget,) = [w for w in body["widgets"] if w["properties"].get("title", "").startswith("Quarantine rate")]
        metrics = _widget_metrics(widget)
        (expression,) = [row[0]["expression"] for row in metrics if isinstance(row[0], dict)]
        alarm = ops["alarms"][f"{k}/quarantine-rate"]
        assert expression == next(q["expression"] for q in alarm["metric_queries"] if q["expression"])
        assert widget["properties"]["annotations"]["horizontal"][0]["value"] == alarm["threshold"]


def test_dashboard_widgets_are_well_formed_and_do_not_overlap(ops):
    for dashboard in ops["dashboards"].values():
        cells = set()
        for w in json.loads(dashboard["body"])["widgets"]:
            assert w["type"] in {"metric", "alarm", "text"}
            assert 0 <= w["x"] and w["x"] + w["width"] <= 24 and w["height"] > 0
            if w["type"] == "metric":
                assert w["properties"]["region"] == REGION and w["properties"]["metrics"], w["properties"]["title"]
            for x in range(w["x"], w["x"] + w["width"]):
                for y in range(w["y"], w["y"] + w["height"]):
                    assert (x, y) not in cells, (x, y)
                    cells.add((x, y))


# ------------------------------------------------------------------ Athena named queries
def test_named_queries_count_each_pipelines_iceberg_tables(ops, planned):
    queries = ops["named_queries"]
    for k, s in planned.items():
        tables = tp.deploy_json(k)["tables"]
        assert tables and s["tables"] == tables
        db = s["glue_database_name"]
        q = queries[f"{k}/row-counts"]
        assert q["name"] == f"{s['name']}-row-counts" and q["database"] == db
        counted = re.findall(r"""SELECT '(\w+)' AS table_name, count\(\*\) AS row_count FROM "(\w+)"\."(\w+)\"""", q["query"])
        assert counted == [(t, db, t) for t in tables], counted
        assert q["query"].count("UNION ALL") == len(tables) - 1
        for t in tables:
            snap = queries[f"{k}/{t}-snapshots"]
            assert snap["name"] == f"{s['name']}-{t}-snapshots" and snap["database"] == db
            assert f'FROM "{db}"."{t}$snapshots"' in snap["query"]
    assert len(queries) == sum(1 + len(tp.deploy_json(k)["tables"]) for k in planned)
    assert len({q["name"] for q in queries.values()}) == len(queries)


def test_named_queries_go_to_the_workgroup():
    (query,) = tp.resources(OPERATIONS, "aws_athena_named_query").values()
    assert query["for_each"] == "${module.settings.named_queries}"
    assert query["workgroup"] == "${aws_athena_workgroup.lake.id}"
    for field in ("name", "description", "database", "query"):
        assert query[field] == f"${{each.value.{field}}}", field


# ------------------------------------------------------------------ the resources (HCL wiring)
def test_every_alarm_notifies_the_topic():
    (alarm,) = tp.resources(OPERATIONS, "aws_cloudwatch_metric_alarm").values()
    assert alarm["for_each"] == "${module.settings.alarms}"
    assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
    assert alarm["ok_actions"] == ["${aws_sns_topic.alarms.arn}"]
    assert alarm["actions_enabled"] is True
    for field in ("alarm_name", "namespace", "metric_name", "dimensions", "statistic", "period", "threshold",
                  "comparison_operator", "evaluation_periods", "treat_missing_data"):
        assert field in alarm, field
    assert tp.blocks(tp.TF_DIR, "output")["alarm_topic_arn"]["value"] == "${module.operations.alarm_topic_arn}"
    assert tp.blocks(OPERATIONS, "output")["alarm_topic_arn"]["value"] == "${aws_sns_topic.alarms.arn}"


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_can_use():
    topic = tp.resources(OPERATIONS, "aws_sns_topic")["alarms"]
    assert topic["kms_master_key_id"] == "${aws_kms_key.alarms.arn}"
    key = tp.resources(OPERATIONS, "aws_kms_key")["alarms"]
    assert key["enable_key_rotation"] is True
    assert key["policy"] == "${data.aws_iam_policy_document.alarm_key.json}"
    docs = policy_documents(OPERATIONS)

    def by_principal(doc, service):
        return [st for st in docs[doc]["statement"]
                if any(service in [tp.unquote(i) for i in p["identifiers"]] for p in st.get("principals", []))]

    (cw_key,) = by_principal("alarm_key", "cloudwatch.amazonaws.com")
    assert {tp.unquote(a) for a in cw_key["actions"]} == {"kms:Decrypt", "kms:GenerateDataKey"}
    (admin,) = by_principal("alarm_key", "arn:${local.partition}:iam::${local.account_id}:root")
    # The account keeps the key's administration (no lock-out) without a wildcard action.
    admin_actions = {tp.unquote(a) for a in admin["actions"]}
    assert {"kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey", "kms:ScheduleKeyDeletion"} <= admin_actions
    assert not [a for a in admin_actions if "*" in a]
    (publish,) = by_principal("alarm_topic", "cloudwatch.amazonaws.com")
    assert [tp.unquote(a) for a in publish["actions"]] == ["sns:Publish"]
    assert publish["resources"] == ["${aws_sns_topic.alarms.arn}"]
    conditions = {tp.unquote(c["variable"]): [tp.unquote(v) for v in c["values"]] for c in publish["condition"]}
    assert conditions == {"aws:SourceAccount": ["${local.account_id}"], "aws:SourceArn": ["${local.alarm_arn_prefix}*"]}
    policy = tp.resources(OPERATIONS, "aws_sns_topic_policy")["alarms"]
    assert policy["policy"] == "${data.aws_iam_policy_document.alarm_topic.json}"
    assert tp.unquote(tp.locals_of(OPERATIONS)["alarm_arn_prefix"]).endswith(":cloudwatch:${local.region}:${local.account_id}:alarm:")


def test_email_subscription_only_with_alarm_email():
    (sub,) = tp.resources(OPERATIONS, "aws_sns_topic_subscription").values()
    assert sub["count"] == "${var.alarm_email == null ? 0 : 1}"
    assert (tp.unquote(sub["protocol"]), sub["endpoint"], sub["topic_arn"]) == ("email", "${var.alarm_email}", "${aws_sns_topic.alarms.arn}")
    for directory in (tp.TF_DIR, OPERATIONS):
        assert tp.variable_default(directory, "alarm_email") is None, directory.name
    assert tp.blocks(tp.TF_DIR, "module")["operations"]["alarm_email"] == "${var.alarm_email}"


def test_root_feeds_the_operations_each_pipelines_resources():
    call = tp.blocks(tp.TF_DIR, "module")["operations"]
    expr = call["pipelines"]
    for needle in ("for k, p in module.pipeline", "p.glue_database", "local.pipelines[k].tables", "p.function_names",
                   "p.state_machine_arn", "p.transform_dlq_name", "p.maintenance_dlq_name", "local.pipelines[k].name",
                   "[for e in local.pipelines[k].extracts : e.source]"):
        assert needle in expr, needle
    assert call["functions"] == '${{for m in module.api_emulator : "api-emulator" => m.function_name}}'
    pipeline_outputs = tp.blocks(tp.PIPELINE_DIR, "output")
    assert pipeline_outputs["transform_dlq_name"]["value"] == "${module.orchestration.transform_dlq_name}"
    assert pipeline_outputs["maintenance_dlq_name"]["value"] == "${module.orchestration.maintenance_dlq_name}"
    outputs = tp.blocks(ORCHESTRATION, "output")
    assert outputs["transform_dlq_name"]["value"] == "${aws_sqs_queue.transform_dlq.name}"
    assert outputs["maintenance_dlq_name"]["value"] == "${aws_sqs_queue.maintenance_dlq.name}"
    # The redrive target and the maintenance destination are these queues.
    queues = tp.resources(ORCHESTRATION, "aws_sqs_queue")
    assert "aws_sqs_queue.transform_dlq.arn" in queues["transform"]["redrive_policy"]


def test_xray_tracing_is_opt_in_everywhere():
    fn = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_lambda_function")["this"]
    assert plain(fn["tracing_config"]) == [{"mode": '${var.xray_tracing ? "Active" : "PassThrough"}'}]
    sm = tp.resources(ORCHESTRATION, "aws_sfn_state_machine")["pipeline"]
    assert plain(sm["tracing_configuration"]) == [{"enabled": "${var.xray_tracing}"}]
    for directory in (tp.TF_DIR, tp.PIPELINE_DIR, ORCHESTRATION, tp.MODULES_DIR / "lambda_function"):
        assert tp.variable_default(directory, "xray_tracing") is False, directory.name
    # Every function and the orchestration get the switch.
    for name, body in tp.lambda_modules().items():
        assert body.get("xray_tracing") == "${var.xray_tracing}", name
    assert tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]["xray_tracing"] == "${var.xray_tracing}"
    assert tp.blocks(tp.TF_DIR, "module")["pipeline"]["xray_tracing"] == "${var.xray_tracing}"


def _xray_statement(directory: Path, document: str) -> dict:
    """The dynamic statement of the policy document that grants X-Ray actions (exactly one)."""
    found = []
    for dyn in policy_documents(directory)[document].get("dynamic", []):
        for kind, st in dyn.items():
            if tp.unquote(kind) == "statement" and "xray:" in json.dumps(st):
                found.append(st)
    assert len(found) == 1, f"{directory.name} {document}: {len(found)} X-Ray statements"
    assert not [s for s in policy_documents(directory)[document].get("statement", []) if "xray:" in json.dumps(s)], \
        f"{directory.name} {document}: an X-Ray statement outside the xray_tracing switch"
    return found[0]


def test_xray_permissions_come_with_the_switch():
    fn = _xray_statement(tp.MODULES_DIR / "lambda_function", "this")
    assert fn["for_each"] == "${var.xray_tracing ? [1] : []}"
    assert {tp.unquote(a) for a in fn["content"][0]["actions"]} == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    sm = _xray_statement(ORCHESTRATION, "state_machine")
    assert sm["for_each"] == "${var.xray_tracing ? [1] : []}"
    assert {tp.unquote(a) for a in sm["content"][0]["actions"]} == {
        "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}


def test_athena_workgroup_settings():
    wg = tp.resources(OPERATIONS, "aws_athena_workgroup")["lake"]
    (config,) = wg["configuration"]
    assert config["enforce_workgroup_configuration"] is True
    assert config["publish_cloudwatch_metrics_enabled"] is True
    assert config["bytes_scanned_cutoff_per_query"] == "${var.athena_bytes_scanned_cutoff_per_query}"
    assert tp.unquote(config["engine_version"][0]["selected_engine_version"]) == "Athena engine version 3"
    (result,) = config["result_configuration"]
    assert tp.unquote(result["output_location"]) == "s3://${var.bucket_name}/${var.athena_results_prefix}"
    (enc,) = result["encryption_configuration"]
    assert enc["encryption_option"] == '${var.lake_kms_key_arn == null ? "SSE_S3" : "SSE_KMS"}'
    assert enc["kms_key_arn"] == "${var.lake_kms_key_arn}"
    # The results prefix is the data lake's athena-results/, which its lifecycle expires.
    root = tp.blocks(tp.TF_DIR, "module")["operations"]
    assert root["athena_results_prefix"] == "${module.data_lake.athena_results_prefix}"
    assert root["bucket_name"] == "${module.data_lake.bucket_name}"
    lake_outputs = tp.blocks(tp.MODULES_DIR / "data_lake", "output")
    assert tp.unquote(lake_outputs["athena_results_prefix"]["value"]) == "${local.prefix}athena-results/"
    (lifecycle,) = tp.resources(tp.MODULES_DIR / "data_lake", "aws_s3_bucket_lifecycle_configuration").values()
    (rule,) = [r for r in lifecycle["rule"] if tp.unquote(r["id"]) == "expire-athena-results"]
    assert tp.unquote(rule["filter"][0]["prefix"]) == "${local.prefix}athena-results/"
    assert rule["expiration"][0]["days"] == "${max(var.athena_results_expiration_days, 1)}"
    # No zone of the functions is below it (nothing they read or write expires with it).
    assert "athena-results" not in str(tp.locals_of(tp.MODULES_DIR / "data_lake")["zones"])


def test_readme_explains_every_alarm_and_the_contract(ops):
    readme = (tp.TF_DIR / "README.md").read_text()
    section = readme.split("## 5. Operate", 1)[1].split("\n## ", 1)[0]
    # One row per kind of alarm, by name pattern.
    kinds = set()
    for key, alarm in ops["alarms"].items():
        kind = key.split("/", 1)[1]
        kind = re.sub(r"^(api-extract|songs-extract|transform|redshift-setup|run-control|api-emulator)-(errors|throttles)$", r"<function>-\2", kind)
        kinds.add(kind)
    for kind in kinds:
        pattern = kind if kind.startswith("<function>") else {
            "transform-dlq": "<prefix>-transform-dlq-not-empty", "maintenance-dlq": "<prefix>-maintenance-dlq-not-empty",
            "executions-failed": "<prefix>-pipeline-executions-failed", "executions-timed-out": "<prefix>-pipeline-executions-timed-out",
            "executions-aborted": "<prefix>-pipeline-executions-aborted", "data-quality": "<prefix>-data-quality-failed",
            "quarantine-rate": "<prefix>-quarantine-rate"}[kind]
        assert f"| `{pattern}` |" in section, pattern
    for family in ("transform", "extract"):
        for metric, unit in CONTRACT[family]["metrics"].items():
            assert f"`{metric}`" in section, metric
    assert f"`{NAMESPACE}`" in section
    variables = readme.split("| variable | what |", 1)[1].split("\n\n", 1)[0]
    for name in ("alarm_email", "quarantine_rate_threshold", "xray_tracing", "athena_bytes_scanned_cutoff_per_query"):
        assert f"`{name}`" in variables, name


# ------------------------------------------------------------------ the root, planned (local provider)
REQUIRED_TFVARS = {
    "api_base_url": "https://api.deftunes.example.com/",
    "pg_host": "deftunes-db.example.com",
    "pg_secret_arn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds-db-AbCdEf",
    "redshift_subnet_ids": ["subnet-0aaa1111", "subnet-0bbb2222", "subnet-0ccc3333"],
    "redshift_security_group_ids": ["sg-0redshift"],
    "dbt_security_group_ids": ["sg-0dbt"],
    "pipelines": TWO,
}
PLANS = {
    "defaults": {},
    "opted-in": {"alarm_email": "ops@example.com", "xray_tracing": True, "deploy_demo_source": True},
}


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """{plan name: plan JSON} of the root with two pipelines, planned by Terraform with the local
    AWS provider: the defaults, and alarm_email + xray_tracing + the demo source."""
    return tp.plan_root(tmp_path_factory.mktemp("plan"), {name: dict(REQUIRED_TFVARS, **extra) for name, extra in PLANS.items()})


def _changes(plan, rtype: str) -> dict[str, dict]:
    return {r["address"]: r["change"] for r in plan["resource_changes"] if r["type"] == rtype and r["mode"] == "managed"}


def _documents(plan) -> dict[str, dict]:
    return {r["address"]: r["change"]["after"] for r in plan["resource_changes"]
            if r["type"] == "aws_iam_policy_document" and r["mode"] == "data"}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_has_the_alarms_of_every_queue_function_and_state_machine(plans, name):
    plan = plans[name]
    alarms = {c["after"]["alarm_name"]: c["after"] for c in _changes(plan, "aws_cloudwatch_metric_alarm").values()}
    dlqs = [c["after"]["name"] for c in _changes(plan, "aws_sqs_queue").values() if c["after"]["name"].endswith("-dlq")]
    assert len(dlqs) == 4, dlqs
    for queue in dlqs:
        alarm = alarms[f"{queue}-not-empty"]
        assert (alarm["namespace"], alarm["metric_name"], alarm["dimensions"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue})
    functions = [c["after"]["function_name"] for c in _changes(plan, "aws_lambda_function").values()]
    # deftunes: two extract functions, transform, redshift-setup, run-control; sparkify: the last three.
    assert len(functions) == (9 if name == "opted-in" else 8), functions
    for function in functions:
        for suffix, metric in (("errors", "Errors"), ("throttles", "Throttles")):
            alarm = alarms[f"{function}-{suffix}"]
            assert (alarm["namespace"], alarm["metric_name"], alarm["dimensions"]) == ("AWS/Lambda", metric, {"FunctionName": function})
    machines = [c["after"]["name"] for c in _changes(plan, "aws_sfn_state_machine").values()]
    assert sorted(machines) == ["deftunes-pipeline", "deftunes-sparkify-pipeline"]
    for machine in machines:
        for suffix, metric in (("failed", "ExecutionsFailed"), ("timed-out", "ExecutionsTimedOut"), ("aborted", "ExecutionsAborted")):
            alarm = alarms[f"{machine}-executions-{suffix}"]
            assert (alarm["namespace"], alarm["metric_name"]) == ("AWS/States", metric)
    for pipeline, prefix in (("deftunes", "deftunes"), ("sparkify", "deftunes-sparkify")):
        assert alarms[f"{prefix}-data-quality-failed"]["dimensions"] == {"Pipeline": pipeline}
        queries = alarms[f"{prefix}-quarantine-rate"]["metric_query"]
        assert {(q["metric"][0]["namespace"], q["metric"][0]["metric_name"], json.dumps(q["metric"][0]["dimensions"]))
                for q in queries if q["metric"]} == {(NAMESPACE, m, json.dumps({"Pipeline": pipeline})) for m in ("RecordsQuarantined", "RecordsIn")}
    assert len(alarms) == 2 * len(dlqs) // 2 + 2 * len(functions) + 3 * len(machines) + 2 * 2
    # Every alarm notifies the topic (the ARN is known after apply: the configuration says which).
    (config,) = [r for r in plan["configuration"]["root_module"]["module_calls"]["operations"]["module"]["resources"]
                 if r["address"] == "aws_cloudwatch_metric_alarm.this"]
    for field in ("alarm_actions", "ok_actions"):
        assert config["expressions"][field]["references"][0] == "aws_sns_topic.alarms.arn", config["expressions"][field]
    for change in _changes(plan, "aws_cloudwatch_metric_alarm").values():
        assert change["after_unknown"]["alarm_actions"] is True and change["after"]["actions_enabled"] is True


def test_plan_subscribes_the_email_only_when_set(plans):
    assert not _changes(plans["defaults"], "aws_sns_topic_subscription")
    (sub,) = _changes(plans["opted-in"], "aws_sns_topic_subscription").values()
    assert (sub["after"]["protocol"], sub["after"]["endpoint"]) == ("email", "ops@example.com")
    for plan in plans.values():
        (topic,) = _changes(plan, "aws_sns_topic").values()
        assert topic["after"]["name"] == "deftunes-alarms" and topic["after_unknown"]["kms_master_key_id"] is True
        (key,) = _changes(plan, "aws_kms_key").values()
        assert key["after"]["enable_key_rotation"] is True


def test_plan_toggles_xray(plans):
    for name, on in (("defaults", False), ("opted-in", True)):
        plan = plans[name]
        for address, change in _changes(plan, "aws_lambda_function").items():
            assert change["after"]["tracing_config"] == [{"mode": "Active" if on else "PassThrough"}], address
        for address, change in _changes(plan, "aws_sfn_state_machine").items():
            assert change["after"]["tracing_configuration"] == [{"enabled": on}], address
        documents = _documents(plan)
        with_xray = sorted(a for a, d in documents.items() if any(s["sid"] == "XRayTraces" for s in d["statement"]))
        function_docs = sorted(a for a in documents if a.endswith("data.aws_iam_policy_document.this"))
        state_machine_docs = sorted(a for a in documents if a.endswith("data.aws_iam_policy_document.state_machine"))
        assert len(function_docs) == len(_changes(plan, "aws_lambda_function")) and len(state_machine_docs) == 2
        assert with_xray == (sorted(function_docs + state_machine_docs) if on else []), with_xray


def test_plan_has_the_athena_workgroup_and_each_pipelines_queries(plans):
    for plan in plans.values():
        (wg,) = _changes(plan, "aws_athena_workgroup").values()
        (config,) = wg["after"]["configuration"]
        assert config["enforce_workgroup_configuration"] is True and config["publish_cloudwatch_metrics_enabled"] is True
        assert config["engine_version"][0]["selected_engine_version"] == "Athena engine version 3"
        (result,) = config["result_configuration"]
        # The bucket's name is known after apply (the bucket's id); the prefix is the lake's.
        (unknown,) = wg["after_unknown"]["configuration"]
        assert unknown["result_configuration"][0]["output_location"] is True and "output_location" not in result
        assert result["encryption_configuration"] == [{"encryption_option": "SSE_S3", "kms_key_arn": None}]
        queries = {c["after"]["name"]: c["after"] for c in _changes(plan, "aws_athena_named_query").values()}
        for pipeline, prefix, db in (("deftunes", "deftunes", "deftunes_transform"), ("sparkify", "deftunes-sparkify", "sparkify")):
            tables = tp.deploy_json(pipeline)["tables"]
            counts = queries[f"{prefix}-row-counts"]
            assert counts["database"] == db and all(f'"{db}"."{t}"' in counts["query"] for t in tables)
            assert all(f"{prefix}-{t}-snapshots" in queries for t in tables)
        assert len(queries) == sum(1 + len(tp.deploy_json(p)["tables"]) for p in TWO)
        dashboards = sorted(c["after"]["dashboard_name"] for c in _changes(plan, "aws_cloudwatch_dashboard").values())
        assert dashboards == ["deftunes-pipeline", "deftunes-sparkify-pipeline"]



WINDOW_MAP_SIDS = ("StartWindowExecutions", "TrackWindowExecutions", "FindFailedWindow", "WriteMapResults", "MapResultsKey")


def test_plan_lets_each_state_machine_run_its_distributed_map(plans):
    """The state machine role of a pipeline with extracts may start child executions of its own
    state machine only (the ARN the plan gives its name), track and stop its children, find a
    failed child, and write the map results; a files-only pipeline's role (no Map) may not. The
    bucket is known after apply: its scope is checked in the HCL (test_workspace)."""
    for name, plan in plans.items():
        machines = {c["after"]["name"] for c in _changes(plan, "aws_sfn_state_machine").values()}
        for pipeline, prefix, with_map in (("deftunes", "deftunes", True), ("sparkify", "deftunes-sparkify", False)):
            address = f'module.pipeline["{pipeline}"].module.orchestration.data.aws_iam_policy_document.state_machine'
            (change,) = [r["change"] for r in plan["resource_changes"] if r["address"] == address]
            statements = {s["sid"]: (s, u) for s, u in zip(change["after"]["statement"], change["after_unknown"]["statement"])}
            machine = f"{prefix}-pipeline"
            assert machine in machines
            if not with_map:
                assert not set(WINDOW_MAP_SIDS) & set(statements), (name, pipeline)
                continue
            states = f"arn:aws:states:{REGION}:{ACCOUNT}"
            expected = {
                "StartWindowExecutions": (["states:StartExecution"], [f"{states}:stateMachine:{machine}"]),
                "TrackWindowExecutions": (["states:DescribeExecution", "states:StopExecution"], [f"{states}:execution:{machine}/*"]),
                "FindFailedWindow": (["states:ListExecutions", "states:ListMapRuns"],
                                     [f"{states}:execution:{machine}:*", f"{states}:mapRun:{machine}/*"]),
            }
            for sid, (actions, resources) in expected.items():
                statement, _ = statements[sid]
                assert (statement["actions"], statement["resources"]) == (actions, resources), (name, sid)
            write, unknown = statements["WriteMapResults"]
            assert write["actions"] == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
            assert unknown["resources"] == [True], "the lake bucket's ARN, known after apply"
            assert "MapResultsKey" not in statements, "no lake KMS key in these plans"


RUN_CONTROL_SIDS = {"WriteOwnLogs", "WriteRunReports", "CatchUpFrontier", "FindRunControlObjects", "ReadSilverTables",
                    "ReadTableMetadata", "ReadQualityReports", "RunStatements", "AdminSecret", "OwnStatements"}
REDSHIFT_SETUP_SIDS = {"WriteOwnLogs", "RunStatements", "AdminSecret", "OwnStatements"}
OWN_STATEMENT_CONDITION = [{"test": "StringEquals", "variable": "redshift-data:statement-owner-iam-userid", "values": ["${aws:userid}"]}]


def test_plan_gives_each_run_control_its_own_statements(plans):
    """Each pipeline's run-control, planned: its statements (the Map's results only for the pipeline
    with extracts, X-Ray only with xray_tracing), the Glue database of its own pipeline only, and
    the frontier key of its own pipeline. The bucket is known after apply: the S3 resources are
    checked in the HCL (test_run_control)."""
    for name, plan in plans.items():
        for pipeline, prefix, db, with_map in (("deftunes", "deftunes", "deftunes_transform", True),
                                               ("sparkify", "deftunes-sparkify", "sparkify", False)):
            address = f'module.pipeline["{pipeline}"].module.run_control.data.aws_iam_policy_document.this'
            (change,) = [r["change"] for r in plan["resource_changes"] if r["address"] == address]
            statements = {s["sid"]: s for s in change["after"]["statement"]}
            expected = RUN_CONTROL_SIDS | ({"ReadMapResults"} if with_map else set()) | ({"XRayTraces"} if name == "opted-in" else set())
            assert set(statements) == expected, (name, pipeline)
            glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
            assert statements["ReadSilverTables"]["resources"] == sorted(
                [f"{glue}:catalog", f"{glue}:database/{db}", f"{glue}:table/{db}/*"]), (name, pipeline)
            (condition,) = statements["FindRunControlObjects"]["condition"]
            assert (condition["test"], condition["variable"]) == ("StringLike", "s3:prefix")
            assert sorted(condition["values"]) == sorted(
                [f"state/{pipeline}/last-successful-window.json", f"reports/runs/{pipeline}/*", "quality/*"]), (name, pipeline)
            (function,) = [c["after"] for c in _changes(plan, "aws_lambda_function").values()
                           if c["after"]["function_name"] == f"{prefix}-run-control"]
            assert (function["memory_size"], function["timeout"]) == (512, 300)
            # The BI charts of its report: statements in the warehouse, results of its own only.
            # The policy document sorts actions.
            assert statements["RunStatements"]["actions"] == ["redshift-data:ExecuteStatement"]
            assert statements["AdminSecret"]["actions"] == ["secretsmanager:GetSecretValue"]
            own = statements["OwnStatements"]
            assert own["actions"] == ["redshift-data:CancelStatement", "redshift-data:DescribeStatement",
                                      "redshift-data:GetStatementResult"], (name, pipeline)
            assert own["resources"] == ["*"] and own["condition"] == OWN_STATEMENT_CONDITION, (name, pipeline)


def test_plan_keeps_redshift_setup_statements(plans):
    """redshift-setup's role, planned: the three Data API statements it always had (built from the
    local run-control's come from too), without GetStatementResult."""
    for name, plan in plans.items():
        for pipeline in ("deftunes", "sparkify"):
            address = f'module.pipeline["{pipeline}"].module.redshift_setup.data.aws_iam_policy_document.this'
            (change,) = [r["change"] for r in plan["resource_changes"] if r["address"] == address]
            statements = {s["sid"]: s for s in change["after"]["statement"]}
            assert set(statements) == REDSHIFT_SETUP_SIDS | ({"XRayTraces"} if name == "opted-in" else set()), (name, pipeline)
            assert statements["RunStatements"]["actions"] == ["redshift-data:ExecuteStatement"]
            assert statements["AdminSecret"]["actions"] == ["secretsmanager:GetSecretValue"]
            own = statements["OwnStatements"]
            assert own["actions"] == ["redshift-data:CancelStatement", "redshift-data:DescribeStatement"], (name, pipeline)
            assert own["resources"] == ["*"] and own["condition"] == OWN_STATEMENT_CONDITION, (name, pipeline)
