"""The rendered state machine in moto's Step Functions (which executes ASL for real).

moto's Step Functions calls Lambda through http://localhost:$MOTO_PORT. We start moto on
one free port and point MOTO_PORT at a second, where a small fake of the Lambda Invoke API
answers with canned results per function, and records what each function received. That gives per-function results (the Parallel
branches run concurrently, so moto's own queue of Lambda results would be consumed in a
random order) and real function errors (X-Amz-Function-Error + errorType), which moto's
Lambda never returns. The same port answers S3 PutObject, where moto's Step Functions sends the
Distributed Map's ResultWriter (it calls every AWS API at http://localhost:$MOTO_PORT).

moto 5.2.5 accepts the Distributed Map as rendered and executes it, but not faithfully: it runs
the items in-process (no child executions, the parent's history only has the MapRun events),
writes only the ResultWriter's manifest (no result files), and never applies the tolerated
failure threshold (a failed item becomes null and the Map Run succeeds). So the happy path runs
DISTRIBUTED as rendered, and everything that depends on a window failing runs on the same
definition with the Map converted to INLINE (`as_inline`), where moto's semantics are AWS's:
the per-window logic, Retry and Catch. What AWS does instead on a failed window (the Map Run
fails with States.ExceedToleratedFailureThreshold, and the state machine looks up the failed
child's error) runs on `as_failed_map_run`, with stand-ins for the Step Functions SDK calls."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import datetime
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote as urlunquote

import boto3
from botocore.exceptions import ClientError
import pytest

import tfparse as tp
from test_workspace import (MAP_RESULTS_BUCKET, default_pipeline_extracts, fake_definition_values, iter_states,
                            terraform_function_arns)

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/deftunes-pipeline-states"
FUNCTION_ARNS = terraform_function_arns()
CRATE_BY_NAME = {arn.rsplit(":", 1)[1]: crate for crate, arn in FUNCTION_ARNS.items()}
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/deftunes/0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ fake Lambda
class FakeAws:
    """Canned behaviour per crate: a callable(payload) -> ("ok", result) | ("error", type, msg)
    | ("throttle",). Records (crate, payload) of every call."""

    def __init__(self):
        self.behaviour = {}
        self.calls: list[tuple[str, dict]] = []
        self.s3_puts: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.behaviour = {}
            self.calls = []
            self.s3_puts = []

    def calls_of(self, crate):
        with self.lock:
            return [p for c, p in self.calls if c == crate]


def make_handler(fake: FakeAws):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            """S3 PutObject (path style, /<bucket>/<key>): the ResultWriter's manifest."""
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            bucket, _, key = self.path.lstrip("/").split("?")[0].partition("/")
            with fake.lock:
                fake.s3_puts.append((bucket, urlunquote(key), body))
            self.send_response(200)
            self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if "/functions/" in self.path and self.path.endswith("/invocations"):
                return self._invoke(self.path.split("/functions/")[1].split("/")[0], raw)
            self._send(400, {"message": f"fake Lambda: unexpected request {self.path}"})

        def _invoke(self, function, raw):
            name = urlunquote(function)
            if ":function:" in name:
                name = name.split(":function:")[1].split(":")[0]
            crate = CRATE_BY_NAME.get(name)
            payload = json.loads(raw or b"{}")
            if crate is None:
                return self._send(404, {"Type": "User", "message": f"Function not found: {name}"},
                                  {"x-amzn-ErrorType": "ResourceNotFoundException"})
            with fake.lock:
                fake.calls.append((crate, payload))
                behaviour = fake.behaviour.get(crate)
            outcome = behaviour(payload) if behaviour else ("ok", {})
            if outcome[0] == "throttle":
                return self._send(429, {"Type": "User", "message": "Rate exceeded"},
                                  {"x-amzn-ErrorType": "TooManyRequestsException"})
            if outcome[0] == "error":
                return self._send(200, {"errorType": outcome[1], "errorMessage": outcome[2]},
                                  {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"})
            return self._send(200, outcome[1], {"X-Amz-Executed-Version": "$LATEST"})

    return Handler


@pytest.fixture(scope="module")
def fake_aws():
    fake = FakeAws()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.port = server.server_address[1]
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def moto(fake_aws, tmp_path_factory):
    # The moto_server of this interpreter's environment (run.sh's venv), not one on PATH.
    exe = Path(sys.executable).with_name("moto_server")
    exe = str(exe) if exe.exists() else shutil.which("moto_server")
    port = free_port()
    env = dict(os.environ, MOTO_PORT=str(fake_aws.port), AWS_DEFAULT_REGION=REGION)
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("moto_server did not start; see " + log.name)
                time.sleep(0.2)
        req = urllib.request.Request(
            url + "/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}).encode(),
            method="POST",
        )
        urllib.request.urlopen(req, timeout=5).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def sfn(moto):
    return boto3.client("stepfunctions", endpoint_url=moto, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


DBT_STAND_IN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:dbt-stand-in"
CRATE_BY_NAME["dbt-stand-in"] = "dbt-stand-in"


def with_dbt_stand_in(definition: dict) -> dict:
    """moto accepts the ecs:runTask.sync state but cannot execute it: its copy of the
    LocalStack engine drops the PascalCase -> SDK parameter normalisation (boto3 gets
    Cluster=..., KeyError 'Cluster'). For executions only, the dbt state calls a stand-in
    function instead, keeping its Retry, Catch, ResultPath and Next; its ECS parameters are
    checked statically in test_dbt_task_parameters."""
    definition = json.loads(json.dumps(definition))
    state = definition["States"]["Run dbt build"]
    state["Resource"] = "arn:aws:states:::lambda:invoke"
    state["Parameters"] = {"FunctionName": DBT_STAND_IN_ARN, "Payload": {"execution.$": "$$.Execution.Id"}}
    state["ResultSelector"] = {"task_arn.$": "$.Payload.TaskArn"}
    return definition


SFN_STAND_IN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sfn-stand-in"
CRATE_BY_NAME["sfn-stand-in"] = "sfn-stand-in"
SFN_SDK = "arn:aws:states:::aws-sdk:sfn:"


def with_sfn_stand_in(definition: dict) -> dict:
    """moto cannot execute the aws-sdk:sfn tasks either (same PascalCase parameters, and its SDK
    calls would reach the fake Lambda's port). For executions only, each calls the stand-in
    function directly (Resource = its ARN: the result is the function's answer, as an SDK task's
    is the API's), with {"api": <listMapRuns...>, "parameters": <its Parameters>}; ResultSelector,
    ResultPath, Retry, Catch and Next stay. The Parameters are checked statically."""
    definition = json.loads(json.dumps(definition))
    for state in definition["States"].values():
        resource = state.get("Resource", "")
        if resource.startswith(SFN_SDK):
            state["Resource"] = SFN_STAND_IN_ARN
            state["Parameters"] = {"api": resource[len(SFN_SDK):], "parameters": state["Parameters"]}
    return definition


def as_inline(definition: dict) -> dict:
    """The windows' Map in INLINE mode, everything else as rendered (MaxConcurrency, ItemSelector,
    the item's states, ResultPath, Catch): moto never fails a DISTRIBUTED Map Run when a window
    fails, so the per-window semantics, and what a failed window does to the run, are executed
    in this form. The DISTRIBUTED fields are checked statically and on moto's happy path."""
    definition = json.loads(json.dumps(definition))
    process = definition["States"]["Process windows"]
    assert process["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    process["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    for field in ("ResultWriter", "ToleratedFailureCount", "Label"):
        del process[field]
    return definition


MAP_RUN_FAILED = "Test.MapRunFailed"


def as_failed_map_run(definition: dict) -> dict:
    """`as_inline`, where a failed window fails the Map as AWS reports a failed Map Run: with its
    own error replaced by the threshold error (the child's error stays in the child). moto can
    neither raise States.ExceedToleratedFailureThreshold from a Fail state nor catch it by name, so
    the window's failure becomes Test.MapRunFailed, and the Map's catcher of the threshold error
    catches that name instead; the catcher's ResultPath and Next, and the lookup states after it,
    are the rendered ones."""
    definition = as_inline(definition)
    process = definition["States"]["Process windows"]
    (catcher,) = [c for c in process["Catch"] if c["ErrorEquals"] == ["States.ExceedToleratedFailureThreshold"]]
    catcher["ErrorEquals"] = [MAP_RUN_FAILED]
    item = process["ItemProcessor"]["States"]
    assert "Catch" not in item["Extract and transform sources"]
    item["Extract and transform sources"]["Catch"] = [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fail as the Map Run"}]
    item["Fail as the Map Run"] = {"Type": "Fail", "Error": MAP_RUN_FAILED,
                                   "Cause": "The specified tolerated failure threshold was exceeded"}
    return definition


def executable(definition: dict) -> dict:
    return with_sfn_stand_in(with_dbt_stand_in(definition))


@pytest.fixture(scope="module")
def rendered():
    return json.loads(tp.render_template(fake_definition_values(FUNCTION_ARNS)))


@pytest.fixture(scope="module")
def state_machine(sfn, rendered):
    """The rendered definition with the windows' Map INLINE (`as_inline`): the per-window tests."""
    # The definition exactly as Terraform renders it: moto validates it at creation.
    sfn.create_state_machine(name="deftunes-pipeline-as-rendered", definition=json.dumps(rendered), roleArn=ROLE_ARN)
    return sfn.create_state_machine(
        name="deftunes-pipeline", definition=json.dumps(executable(as_inline(rendered))), roleArn=ROLE_ARN
    )["stateMachineArn"]


@pytest.fixture(scope="module")
def distributed(sfn, rendered):
    """The rendered definition, DISTRIBUTED Map included (stand-ins for dbt and the SDK calls only)."""
    return sfn.create_state_machine(
        name="deftunes-pipeline-distributed", definition=json.dumps(executable(rendered)), roleArn=ROLE_ARN
    )["stateMachineArn"]


@pytest.fixture(scope="module")
def failed_map_run(sfn, rendered):
    """`as_failed_map_run`: a failed window fails the Map as AWS reports it, then the lookup runs."""
    return sfn.create_state_machine(
        name="deftunes-pipeline-failed-map-run", definition=json.dumps(executable(as_failed_map_run(rendered))),
        roleArn=ROLE_ARN,
    )["stateMachineArn"]


@pytest.fixture
def fake(fake_aws):
    fake_aws.reset()
    return fake_aws


# ------------------------------------------------------------------ canned results
# Where each source lands: the landing_prefix of every deploy.json extract the tests render.
LANDING_PREFIXES = {e["source"]: e["landing_prefix"] for e in default_pipeline_extracts()}


def extract_ok(payload):
    """Both extract functions: the request names its source (api-extract and songs-extract)."""
    prefix = LANDING_PREFIXES[payload["source"]]
    day = payload.get("start_date", "2020-01-01")
    key = f"{prefix}ingest_on={day}/part-00000.jsonl"
    return ("ok", {
        "source": prefix.removeprefix("landing_zone/").rstrip("/"), "start_date": payload.get("start_date", day), "end_date": payload.get("end_date", day),
        "ingest_date": day, "objects": [{"key": key, "records": 10, "bytes": 1000}],
        "keys": [key], "records": 10, "bytes": 1000,
    })


def transform_ok(payload):
    return ("ok", {"outcomes": [{"key": k, "status": "committed"} for k in payload["keys"]]})


# The functions every pipeline deploys, with or without extracts.
PIPELINE_FUNCTIONS = ("transform", "redshift-setup", "run-control")
REPORTS = f"s3://{MAP_RESULTS_BUCKET}/reports/runs/deftunes"


def previous_day(scheduled_time: str) -> dict:
    """The window of a scheduled run that missed nothing: the day before scheduled_time (UTC)."""
    day = datetime.date.fromisoformat(scheduled_time[:10]) - datetime.timedelta(days=1)
    return {"start_date": day.isoformat(), "end_date": day.isoformat()}


def run_control(planned=None, report_error=None, plan_error=None):
    """The run-control function as its contract answers: {"plan": <input>} -> the windows
    (`planned`, else the previous day of scheduled_time) and the catch-up summary; {"report":
    {...}} -> where it wrote the report. `report_error`/`plan_error`: (type, message) raised
    instead (every attempt)."""
    def answer(payload):
        if set(payload) == {"plan"}:
            if plan_error:
                return ("error", *plan_error)
            windows = planned if planned is not None else [previous_day(payload["plan"]["scheduled_time"])]
            return ("ok", {"windows": windows, "catch_up": {"last_successful": None, "planned": len(windows), "capped": False}})
        if set(payload) == {"report"}:
            if report_error:
                return ("error", *report_error)
            name = payload["report"]["execution_name"]
            return ("ok", {"json": f"{REPORTS}/{name}/report.json", "html": f"{REPORTS}/{name}/report.html",
                           "last_successful_window": None})
        return ("error", "InvalidInput", f"run-control: neither plan nor report: {sorted(payload)}")
    return answer


def happy(fake):
    fake.behaviour.update({
        "api-extract": extract_ok,
        "songs-extract": extract_ok,
        "transform": transform_ok,
        "redshift-setup": lambda p: ("ok", {"statements": 5}),
        "dbt-stand-in": lambda p: ("ok", {"TaskArn": TASK_ARN, "LastStatus": "STOPPED"}),
        "run-control": run_control(),
    })


def plans_of(fake) -> list[dict]:
    return [p["plan"] for p in fake.calls_of("run-control") if "plan" in p]


def reports_of(fake) -> list[dict]:
    return [p["report"] for p in fake.calls_of("run-control") if "report" in p]


def run(sfn, arn, payload, timeout=60):
    execution = sfn.start_execution(
        stateMachineArn=arn, name=f"test-{uuid.uuid4()}", input=json.dumps(payload)
    )["executionArn"]
    deadline = time.time() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING":
            return desc, execution
        assert time.time() < deadline, "execution still RUNNING"
        time.sleep(0.2)


def explain(sfn, execution) -> str:
    """Execution status, error and the last history events, for assertion messages."""
    desc = sfn.describe_execution(executionArn=execution)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    tail = [{k: v for k, v in e.items() if k not in ("timestamp",)} for e in events[-6:]]
    return json.dumps({"status": desc["status"], "error": desc.get("error"), "cause": desc.get("cause"),
                       "last_events": tail}, indent=1, default=str)


def entered_states(sfn, execution):
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


# ------------------------------------------------------------------ tests
def test_rendered_definition_is_accepted(sfn, state_machine, rendered):
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    desc = sfn.describe_state_machine(stateMachineArn=machines["deftunes-pipeline-as-rendered"])
    assert json.loads(desc["definition"]) == rendered


def test_invalid_definition_is_rejected(sfn):
    """moto validates ASL at creation: the acceptance above means something."""
    with pytest.raises(ClientError, match="No Resource declaration"):
        sfn.create_state_machine(
            name="broken", roleArn=ROLE_ARN,
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Next": "Missing"}}}),
        )


def test_dbt_task_parameters(rendered):
    state = rendered["States"]["Run dbt build"]
    assert state["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    params = state["Parameters"]
    assert params["Cluster"].startswith("arn:aws:ecs:") and ":task-definition/" in params["TaskDefinition"]
    assert params["LaunchType"] == "FARGATE"
    vpc = params["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc == {"Subnets": ["subnet-0a", "subnet-0b", "subnet-0c"], "SecurityGroups": ["sg-0dbt"], "AssignPublicIp": "DISABLED"}
    assert params["Overrides"]["ContainerOverrides"][0]["Name"] == "dbt"


# ------------------------------------------------------------------ catch-up and run reports (rendered)
def transitions(states: dict) -> dict[str, set[str]]:
    """{state: the states it may go to} of one level of a definition: Next, a Choice's choices
    and Default, every catcher's Next."""
    out = {}
    for name, s in states.items():
        nxt = {s["Next"]} if "Next" in s else set()
        nxt |= {c["Next"] for c in s.get("Choices", [])} | ({s["Default"]} if "Default" in s else set())
        nxt |= {c["Next"] for c in s.get("Catch", [])}
        out[name] = nxt
    return out


def predecessors(states: dict) -> dict[str, set[str]]:
    preds = {name: set() for name in states}
    for name, nxt in transitions(states).items():
        for n in nxt:
            preds[n].add(name)
    return preds


REPORT_FIELDS = {"execution_arn.$": "$$.Execution.Id", "execution_name.$": "$$.Execution.Name",
                 "state_machine.$": "$$.StateMachine.Name", "started_at.$": "$$.Execution.StartTime",
                 "input.$": "$$.Execution.Input"}


def test_the_schedule_is_planned_by_run_control(rendered):
    """Plan windows: windows -> as given; dates (with or without scheduled_time) -> one window;
    scheduled_time alone -> Plan catch-up, which hands the input to run-control as it is, retries
    as every Lambda task, and replaces the state with the planned windows; every path to the Map
    leaves the same fields (a missing JSONPath would fail the report states)."""
    states = rendered["States"]
    choice = states["Plan windows"]
    assert choice["Choices"] == [
        {"Variable": "$.windows", "IsPresent": True, "Next": "Backfill windows"},
        {"Or": [{"Variable": "$.start_date", "IsPresent": True}, {"Variable": "$.end_date", "IsPresent": True}],
         "Next": "Single window"},
        {"Variable": "$.scheduled_time", "IsPresent": True, "Next": "Plan catch-up"},
    ]
    assert choice["Default"] == "Single window"
    plan = states["Plan catch-up"]
    assert plan["Resource"] == "arn:aws:states:::lambda:invoke"
    assert plan["Parameters"] == {"FunctionName": FUNCTION_ARNS["run-control"], "Payload": {"plan.$": "$"}}
    assert plan["ResultSelector"] == {"windows.$": "$.Payload.windows", "window_count.$": "States.ArrayLength($.Payload.windows)",
                                      "scheduled": True, "catch_up.$": "$.Payload.catch_up", "windows_processed": None}
    assert plan["ResultPath"] == "$" and plan["Next"] == "Process windows"
    assert plan["Retry"] == states["Set up Redshift"]["Retry"]
    assert plan["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Catch-up not planned"}]
    assert states["Catch-up not planned"]["Parameters"] == {"windows": None, "window_count": 0, "scheduled": True,
                                                            "catch_up": None, "windows_processed": None, "error.$": "$.error"}
    assert states["Catch-up not planned"]["Next"] == "Failure report size?"
    assert states["Backfill windows"]["Parameters"] == {"windows.$": "$.windows", "window_count.$": "States.ArrayLength($.windows)",
                                                        "scheduled": False, "catch_up": None, "windows_processed": None}
    assert states["Single window"]["Parameters"] == {"windows.$": "States.Array($)", "window_count": 1, "scheduled": False,
                                                     "catch_up": None, "windows_processed": None}
    fields = {k.removesuffix(".$") for k in plan["ResultSelector"]}
    for name in ("Backfill windows", "Single window"):
        assert {k.removesuffix(".$") for k in states[name]["Parameters"]} == fields, name
    assert predecessors(states)["Process windows"] == {"Backfill windows", "Single window", "Plan catch-up"}
    # The children still get only the window's own fields: the Map reads $.windows, as before.
    assert states["Process windows"]["ItemsPath"] == "$.windows"

    # No windowed extract (every source read whole): nothing to catch up, the schedule's input is
    # one run, as {} is.
    unwindowed = json.loads(tp.render_template({**fake_definition_values(FUNCTION_ARNS), "extracts": OTHER_EXTRACTS["one-sql"]}))
    assert not {"Plan catch-up", "Catch-up not planned"} & set(unwindowed["States"])
    assert unwindowed["States"]["Plan windows"]["Choices"] == choice["Choices"][:2]


@pytest.mark.parametrize("definition_of", ["extracts", "files-only", "two-windowed", "one-sql"])
def test_every_end_of_a_run_writes_its_report(rendered, definition_of):
    """Success: Run dbt build -> Write run report -> Report written (or Report not written, its
    error caught) -> Pipeline succeeded. Failure: every Fail state is reached only through Write
    failure report, whose own failure is caught into $.report_error (never $.error, which the Fail
    states read). Both call run-control with the execution (context object) and its status."""
    if definition_of == "extracts":
        definition = rendered
    elif definition_of == "files-only":
        definition = json.loads(tp.render_template(files_only_values()))
    else:
        definition = json.loads(tp.render_template({**fake_definition_values(FUNCTION_ARNS), "extracts": OTHER_EXTRACTS[definition_of]}))
    states = definition["States"]
    windowed = definition_of != "files-only"
    preds = predecessors(states)
    lambda_retry = states["Set up Redshift"]["Retry"]
    after_failure_report = "Data quality?" if windowed else "Pipeline failed"
    for name, status, caught in (("Write run report", "SUCCEEDED", "Report not written"),
                                 ("Write failure report", "FAILED", after_failure_report)):
        state = states[name]
        assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert state["Parameters"]["FunctionName"] == FUNCTION_ARNS["run-control"], name
        report = state["Parameters"]["Payload"]["report"]
        per_run = ({"scheduled.$": "$.scheduled", "windows.$": "$.windows", "map_run.$": "$.windows_processed"} if windowed
                   else {"scheduled": False, "windows": None, "map_run": None})
        error = {"error": None} if status == "SUCCEEDED" else {"error.$": "$.error"}
        assert report == {**REPORT_FIELDS, "status": status, **per_run, **error}, name
        assert state["ResultSelector"] == {"written.$": "$.Payload"} and state["ResultPath"] == "$.report", name
        assert state["Retry"] == lambda_retry, name
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.report_error", "Next": caught}], name

    # Success (a long backfill's windows are left out of the report first: test_report_size_guards).
    if windowed:
        assert states["Run dbt build"]["Next"] == "Report size?"
        assert preds["Write run report"] == {"Report size?", "Report without the windows"}
    else:
        assert states["Run dbt build"]["Next"] == "Write run report"
    assert states["Write run report"]["Next"] == "Report written"
    assert preds["Pipeline succeeded"] == {"Report written", "Report not written"}
    shared = ({"windows_processed.$": "$.windows_processed", "scheduled.$": "$.scheduled", "catch_up.$": "$.catch_up"}
              if windowed else {"input.$": "$.input"})
    assert states["Report written"]["Parameters"] == {"report.$": "$.report.written", **shared, "dbt.$": "$.dbt"}
    assert states["Report not written"]["Parameters"] == {"report_error.$": "$.report_error", **shared, "dbt.$": "$.dbt"}

    # Failure: the Fail states only after the failure report (through the data quality choice).
    fails = {n for n, s in states.items() if s["Type"] == "Fail"}
    assert fails == ({"Pipeline failed", "Data quality failed"} if windowed else {"Pipeline failed"})
    for fail in fails:
        assert preds[fail] <= {"Write failure report", "Data quality?"}, (fail, preds[fail])
        assert (states[fail]["ErrorPath"], states[fail]["CausePath"]) == ("$.error.Error", "$.error.Cause")
    if windowed:
        assert preds["Data quality?"] == {"Write failure report"}
        assert transitions(states)["Write failure report"] == {"Data quality?"}
        assert preds["Write failure report"] == {"Failure report size?", "Failure report without the windows"}
        entry = "Failure report size?"
    else:
        assert transitions(states)["Write failure report"] == {"Pipeline failed"}
        entry = "Write failure report"
    # Whatever leads to the failure report carries $.error: every catcher into it writes there,
    # or it comes from a state after such a catcher (the failed-window lookup keeps the Map Run's).
    catchers = [(name, c) for name, state in states.items() for c in state.get("Catch", []) if c["Next"] == entry]
    assert {name for name, _ in catchers} >= {"Set up Redshift", "Run dbt build"}
    assert all(c["ResultPath"] in ("$.error", "$.lookup_error") for _, c in catchers)
    assert not [c for s in states.values() for c in s.get("Catch", []) if c["ResultPath"] == "$.error"
                and c["Next"] not in (entry, "Find the failed window", "Catch-up not planned")]
    # Every transition names a state of the definition.
    assert all(n in states for targets in transitions(states).values() for n in targets)


REPORT_GUARDS = {"Report size?": ("Report without the windows", "Write run report"),
                 "Failure report size?": ("Failure report without the windows", "Write failure report")}


def report_window_limit(definition: dict) -> int:
    """The number of windows of a manual run past which its reports leave the windows out."""
    limits = set()
    for choice in REPORT_GUARDS:
        (rule,) = definition["States"][choice]["Choices"]
        (manual, count) = rule["And"]
        assert manual == {"Variable": "$.scheduled", "BooleanEquals": False}
        assert set(count) == {"Variable", "NumericGreaterThan"} and count["Variable"] == "$.window_count"
        limits.add(count["NumericGreaterThan"])
    (limit,) = limits
    return limit


def with_report_window_limit(definition: dict, limit: int) -> dict:
    definition = json.loads(json.dumps(definition))
    for choice in REPORT_GUARDS:
        definition["States"][choice]["Choices"][0]["And"][1]["NumericGreaterThan"] = limit
    return definition


def test_report_size_guards(rendered):
    """Before each report: a manual run with more windows than fit twice in a state's input (the
    report receives the input, which holds a backfill's windows, and the windows) leaves its
    windows out; a scheduled run never does (its input is a time; run-control needs its windows
    to move the frontier)."""
    states = rendered["States"]
    assert report_window_limit(rendered) == THREE_YEARS_OF_DAYS
    for choice, (leave_out, report) in REPORT_GUARDS.items():
        assert states[choice]["Choices"][0]["Next"] == leave_out and states[choice]["Default"] == report
        assert states[leave_out] == {"Type": "Pass", "Result": None, "ResultPath": "$.windows", "Next": report}


@pytest.fixture(scope="module")
def small_report_limit(sfn, rendered):
    """The rendered definition (INLINE Map) with the report's window limit at 2, so that a
    3-window backfill runs the guards."""
    return sfn.create_state_machine(
        name="deftunes-pipeline-small-report-limit", roleArn=ROLE_ARN,
        definition=json.dumps(executable(as_inline(with_report_window_limit(rendered, 2)))))["stateMachineArn"]


@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_a_backfill_past_the_limit_is_reported_without_its_windows(sfn, small_report_limit, fake, fails):
    happy(fake)
    if fails:
        dbt_fails(fake)
    desc, execution = run(sfn, small_report_limit, {"windows": BACKFILL})
    assert desc["status"] == ("FAILED" if fails else "SUCCEEDED"), explain(sfn, execution)
    (report,) = reports_of(fake)
    assert report["windows"] is None and report["input"] == {"windows": BACKFILL}
    assert len(report["map_run"]) == 3, "the Map's results still give each window"
    assert ("Failure report without the windows" if fails else "Report without the windows") in entered_states(sfn, execution)

    # At the limit, and a scheduled run above it, keep their windows.
    fake.reset()
    happy(fake)
    desc, execution = run(sfn, small_report_limit, {"windows": BACKFILL[:2]})
    assert desc["status"] == "SUCCEEDED" and reports_of(fake)[0]["windows"] == BACKFILL[:2]
    fake.reset()
    happy(fake)
    fake.behaviour["run-control"] = run_control(planned=MISSED)
    desc, execution = run(sfn, small_report_limit, {"scheduled_time": "2020-02-01T01:30:00Z"})
    assert desc["status"] == "SUCCEEDED" and reports_of(fake)[0]["windows"] == MISSED


# ------------------------------------------------------------------ branches from deploy.json
def assert_branches_are(definition: dict, extracts: list[dict]):
    """One Parallel branch per extract, in deploy.json's order: Extract <source> (its function;
    the window merged into {"source": <source>} when windowed, {"source": <source>} alone
    otherwise) -> Transform <source>, and the result named after the source by branch index."""
    process = definition["States"]["Process windows"]
    parallel = process["ItemProcessor"]["States"]["Extract and transform sources"]
    sources = [e["source"] for e in extracts]
    assert [b["StartAt"] for b in parallel["Branches"]] == [f"Extract {s}" for s in sources]
    lambda_retry = definition["States"]["Set up Redshift"]["Retry"]
    for i, (branch, e) in enumerate(zip(parallel["Branches"], extracts)):
        s = e["source"]
        assert set(branch["States"]) == {f"Extract {s}", f"Transform {s}"}
        extract, transform = branch["States"][f"Extract {s}"], branch["States"][f"Transform {s}"]
        request = f"$.{s}_request"
        assert extract["Parameters"] == {
            "FunctionName": FUNCTION_ARNS[e["function"]],
            "Payload.$": f"States.JsonMerge($.request, {request}, false)" if e["windowed"] else request,
        }
        assert extract["Next"] == f"Transform {s}" and extract["ResultPath"] == "$.landed"
        assert transform["Parameters"] == {"FunctionName": FUNCTION_ARNS["transform"],
                                           "Payload": {"keys.$": "$.landed.summary.keys"}}
        assert transform["End"] is True and transform["ResultPath"] == "$.transformed"
        assert extract["Retry"] == transform["Retry"] == lambda_retry
        assert parallel["ResultSelector"][s] == {"landed.$": f"$[{i}].landed.summary",
                                                 "transformed.$": f"$[{i}].transformed.outcome"}
    assert set(parallel["ResultSelector"]) == set(sources)
    selector = process["ItemSelector"]
    assert {k: v for k, v in selector.items() if k.endswith("_request")} == {f"{s}_request": {"source": s} for s in sources}
    assert selector["request"] == {} and selector["window.$"] == "$$.Map.Item.Value"


def test_each_pipeline_passes_the_extracts_of_its_deploy_json():
    settings_locals = tp.locals_of(tp.MODULES_DIR / "pipeline_settings")
    assert settings_locals["deploy"] == (
        '${{for k, _ in var.pipelines : k => try(jsondecode(file("${var.pipelines_dir}/${k}/deploy.json")), null)}}'
    )
    assert tp.unquote(tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["pipelines_dir"]) == "${path.root}/../pipelines"
    root_call = tp.blocks(tp.TF_DIR, "module")["pipeline"]
    assert root_call["for_each"] == "${var.pipelines}" and root_call["settings"] == "${local.pipelines[each.key]}"
    assert tp.blocks(tp.PIPELINE_DIR, "module")["orchestration"]["extracts"] == "${var.settings.extracts}"
    assert tp.definition_vars()["extracts"] == "${var.extracts}"
    # Terraform's own evaluation: each pipeline gets its deploy.json extracts, in order.
    planned = tp.plan_settings({"deftunes": {}, "sparkify": {}})
    for pipeline in ("deftunes", "sparkify"):
        assert planned[pipeline]["extracts"] == tp.deploy_json(pipeline)["extracts"], pipeline
    assert [tp.unquote(k) for k in tp.variable_default(tp.TF_DIR, "pipelines")] == ["deftunes"]
    # var.pipelines' keys are folder names: every pipelines/<name> passes, a path does not.
    for directory in (tp.TF_DIR, tp.MODULES_DIR / "pipeline_settings"):
        validation = tp.blocks(directory, "variable")["pipelines"]["validation"][0]
        pattern = re.search(r'can\(regex\("(.+?)", k\)\)', validation["condition"]).group(1)
        folders = [p.parent.name for p in (tp.REPO_ROOT / "pipelines").glob("*/deploy.json")]
        assert {"deftunes", "sparkify"} <= set(folders) and all(re.search(pattern, f) for f in folders), folders
        assert not any(re.search(pattern, bad) for bad in ("../deftunes", "deftunes/", "", ".hidden", "a/b"))


def test_branches_are_exactly_the_deploy_json_extracts(rendered):
    extracts = default_pipeline_extracts()
    assert {e["source"] for e in extracts} == {"users", "sessions", "songs"}
    assert_branches_are(rendered, extracts)


OTHER_EXTRACTS = {
    # Two windowed REST sources, no SQL source; not in alphabetical order (the index -> name
    # mapping of the results must follow the branches).
    "two-windowed": [
        {"source": "orders", "function": "api-extract", "windowed": True, "landing_prefix": "landing_zone/api/orders/"},
        {"source": "customers", "function": "api-extract", "windowed": True, "landing_prefix": "landing_zone/api/customers/"},
    ],
    "one-sql": [
        {"source": "tracks", "function": "songs-extract", "windowed": False, "landing_prefix": "landing_zone/rds/tracks/"},
    ],
}


@pytest.mark.parametrize("case", list(OTHER_EXTRACTS))
def test_another_extract_list_renders_a_valid_state_machine(sfn, fake, monkeypatch, case):
    extracts = OTHER_EXTRACTS[case]
    definition = json.loads(tp.render_template({**fake_definition_values(FUNCTION_ARNS), "extracts": extracts}))
    assert_branches_are(definition, extracts)
    lambda_tasks = [n for n, s in iter_states(definition["States"]) if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
    # Extract and transform per source; Redshift setup; both reports; the catch-up plan with a windowed extract.
    assert len(lambda_tasks) == 2 * len(extracts) + 3 + any(e["windowed"] for e in extracts)

    # Accepted by moto's validation, and executed end to end.
    sfn.create_state_machine(name=f"other-{case}-as-rendered", definition=json.dumps(definition), roleArn=ROLE_ARN)
    arn = sfn.create_state_machine(name=f"other-{case}", definition=json.dumps(executable(as_inline(definition))),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    for e in extracts:
        monkeypatch.setitem(LANDING_PREFIXES, e["source"], e["landing_prefix"])
    happy(fake)
    window = {"start_date": "2020-01-01", "end_date": "2020-01-31"}
    desc, execution = run(sfn, arn, window)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)

    for function in ("api-extract", "songs-extract"):
        expected = [{**window, "source": e["source"]} if e["windowed"] else {"source": e["source"]}
                    for e in extracts if e["function"] == function]
        got = fake.calls_of(function)
        assert sorted(got, key=lambda p: p["source"]) == sorted(expected, key=lambda p: p["source"]), function
    (processed,) = json.loads(desc["output"])["windows_processed"]
    assert set(processed["sources"]) == {e["source"] for e in extracts}
    for e in extracts:
        key = f"{e['landing_prefix']}ingest_on=2020-01-01/part-00000.jsonl"
        assert processed["sources"][e["source"]]["landed"]["keys"] == [key], e["source"]
        assert processed["sources"][e["source"]]["transformed"]["outcomes"] == [{"key": key, "status": "committed"}]


def test_happy_path_with_a_window(sfn, state_machine, fake):
    happy(fake)
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)

    api = sorted(fake.calls_of("api-extract"), key=lambda p: p["source"])
    assert api == [
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "source": "sessions"},
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "source": "users"},
    ]
    assert fake.calls_of("songs-extract") == [{"source": "songs"}]
    transformed = sorted(k for p in fake.calls_of("transform") for k in p["keys"])
    assert transformed == [
        "landing_zone/api/sessions/ingest_on=2020-01-01/part-00000.jsonl",
        "landing_zone/api/users/ingest_on=2020-01-01/part-00000.jsonl",
        "landing_zone/rds/songs/ingest_on=2020-01-01/part-00000.jsonl",
    ]
    assert all(set(p) == {"keys"} for p in fake.calls_of("transform"))
    assert len(fake.calls_of("redshift-setup")) == 1
    assert len(fake.calls_of("dbt-stand-in")) == 1

    output = json.loads(desc["output"])
    (window,) = output["windows_processed"]
    assert window["window"] == {"start_date": "2020-01-01", "end_date": "2020-01-31"}
    assert window["sources"]["users"]["landed"]["records"] == 10
    assert window["sources"]["sessions"]["transformed"]["outcomes"][0]["status"] == "committed"
    assert output["dbt"]["task_arn"] == TASK_ARN
    assert "Pipeline succeeded" in entered_states(sfn, execution)


def test_no_input_lets_the_function_derive_the_window(sfn, state_machine, fake):
    happy(fake)
    desc, execution = run(sfn, state_machine, {})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(p["source"] for p in fake.calls_of("api-extract")) == ["sessions", "users"]
    assert all(set(p) == {"source"} for p in fake.calls_of("api-extract"))
    assert plans_of(fake) == [], "only the schedule's input is planned"


def test_a_scheduled_input_runs_the_window_run_control_plans(sfn, state_machine, fake):
    """Nothing missed: run-control plans the schedule's own period (here the previous day), and
    the extracts receive that window's dates."""
    happy(fake)
    payload = {"scheduled_time": "2020-02-01T01:30:00Z"}
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert plans_of(fake) == [payload]
    assert sorted(fake.calls_of("api-extract"), key=lambda p: p["source"]) == [
        {"start_date": "2020-01-31", "end_date": "2020-01-31", "source": "sessions"},
        {"start_date": "2020-01-31", "end_date": "2020-01-31", "source": "users"},
    ]
    # songs is not windowed: it gets its source only, whatever the window.
    assert fake.calls_of("songs-extract") == [{"source": "songs"}]


MISSED = [{"start_date": f"2020-01-{d}", "end_date": f"2020-01-{d}"} for d in (29, 30, 31)]


def test_a_scheduled_run_catches_up_exactly_the_planned_windows(sfn, state_machine, fake):
    """Three missed days: the execution input goes to run-control as it is ({"plan": <input>}),
    and the Map runs exactly the windows it answers, one window each, with those dates (and
    nothing else: the planned dates are the windows), then serving once; the run is reported as
    scheduled, with those windows, and its output keeps the catch-up summary."""
    happy(fake)
    fake.behaviour["run-control"] = run_control(planned=MISSED)
    payload = {"scheduled_time": "2020-02-01T01:30:00Z"}
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert [p for p in fake.calls_of("run-control") if "plan" in p] == [{"plan": payload}]
    for source in ("users", "sessions"):
        got = sorted((p for p in fake.calls_of("api-extract") if p["source"] == source), key=lambda p: p["start_date"])
        assert got == [{**w, "source": source} for w in MISSED], source
    assert fake.calls_of("songs-extract") == [{"source": "songs"}] * 3
    assert len(fake.calls_of("transform")) == 9
    assert len(fake.calls_of("redshift-setup")) == len(fake.calls_of("dbt-stand-in")) == 1

    (report,) = reports_of(fake)
    assert (report["status"], report["scheduled"], report["windows"], report["input"]) == ("SUCCEEDED", True, MISSED, payload)
    output = json.loads(desc["output"])
    assert output["scheduled"] is True
    assert output["catch_up"] == {"last_successful": None, "planned": 3, "capped": False}
    assert [w["window"] for w in output["windows_processed"]] == MISSED
    states = entered_states(sfn, execution)
    assert states[:2] == ["Plan windows", "Plan catch-up"] and "Single window" not in states


@pytest.mark.parametrize("payload", [
    {}, {"Comment": "Insert your JSON here"}, {"start_date": "2020-01-01", "end_date": "2020-01-31"},
    {"start_date": "2020-01-01", "end_date": "2020-01-02", "scheduled_time": "2020-01-03T01:30:00Z"},
    {"windows": [{"start_date": "2020-01-01", "end_date": "2020-01-31"}, {"start_date": "2020-02-01", "end_date": "2020-02-29"}]},
], ids=["empty", "console", "dates", "dates-and-scheduled-time", "windows"])
def test_inputs_other_than_the_schedules_are_not_planned(sfn, state_machine, fake, payload):
    """Only {"scheduled_time"} alone is planned: dates (with or without a scheduled_time), a
    backfill's windows and the previous period run as given, and are reported as not scheduled
    (a manual run never starts a catch-up)."""
    happy(fake)
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert plans_of(fake) == [] and "Plan catch-up" not in entered_states(sfn, execution)
    (report,) = reports_of(fake)
    assert report["scheduled"] is False and report["input"] == payload
    assert report["windows"] == payload.get("windows", [payload])
    output = json.loads(desc["output"])
    assert output["scheduled"] is False and output["catch_up"] is None


BACKFILL = [
    {"start_date": "2020-01-01", "end_date": "2020-01-31"},
    {"start_date": "2020-02-01", "end_date": "2020-02-29"},
    {"start_date": "2020-03-01", "end_date": "2020-03-31"},
]


def test_backfill_runs_every_window_then_serving_once(sfn, state_machine, fake):
    """Up to backfill_max_concurrency windows at a time (10 here): every window, in any order."""
    happy(fake)
    desc, execution = run(sfn, state_machine, {"windows": BACKFILL})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    users = sorted(p["start_date"] for p in fake.calls_of("api-extract") if p["source"] == "users")
    assert users == ["2020-01-01", "2020-02-01", "2020-03-01"]
    assert len(fake.calls_of("songs-extract")) == 3
    assert len(fake.calls_of("transform")) == 9
    assert len(fake.calls_of("redshift-setup")) == 1
    assert len(fake.calls_of("dbt-stand-in")) == 1
    assert len(json.loads(desc["output"])["windows_processed"]) == 3


def test_non_retryable_error_fails_the_execution_and_keeps_the_error(sfn, state_machine, fake):
    happy(fake)
    fake.behaviour["api-extract"] = lambda p: (
        ("error", "InvalidInput", "end_date 2020-01-01 is before start_date 2020-01-31")
        if p["source"] == "sessions" else extract_ok(p)
    )
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-31", "end_date": "2020-01-01"})
    assert desc["status"] == "FAILED", desc
    assert desc["error"] == "InvalidInput"
    assert "before start_date" in desc["cause"]
    states = entered_states(sfn, execution)
    assert "Pipeline failed" in states and "Pipeline succeeded" not in states
    # Not retried, and nothing downstream ran.
    assert [p["source"] for p in fake.calls_of("api-extract")].count("sessions") == 1
    assert fake.calls_of("redshift-setup") == []
    assert fake.calls_of("dbt-stand-in") == []


def test_data_quality_failure_goes_to_its_own_fail_state(sfn, state_machine, fake):
    happy(fake)
    fake.behaviour["transform"] = lambda p: (
        ("error", "DataQualityFailed", "users: uniqueness(user_id) 0.90 < 0.95")
        if any("/users/" in k for k in p["keys"]) else transform_ok(p)
    )
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert desc["status"] == "FAILED", desc
    assert desc["error"] == "DataQualityFailed" and "uniqueness" in desc["cause"]
    assert entered_states(sfn, execution)[-3:] == ["Write failure report", "Data quality?", "Data quality failed"]
    assert fake.calls_of("redshift-setup") == []
    (report,) = reports_of(fake)
    assert report["status"] == "FAILED" and report["error"] == {"Error": desc["error"], "Cause": desc["cause"]}


def test_retryable_lambda_error_is_retried_to_success(sfn, state_machine, fake):
    happy(fake)
    attempts = {"n": 0}

    def flaky_setup(payload):
        attempts["n"] += 1
        return ("throttle",) if attempts["n"] == 1 else ("ok", {"statements": 5})

    fake.behaviour["redshift-setup"] = flaky_setup
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-01"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert attempts["n"] == 2


def test_failing_serving_step_is_caught(sfn, state_machine, fake):
    happy(fake)
    fake.behaviour["redshift-setup"] = lambda p: ("error", "Configuration", "REDSHIFT_WORKGROUP is not set")
    desc, _ = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-01"})
    assert desc["status"] == "FAILED"
    assert desc["error"] == "Configuration" and "REDSHIFT_WORKGROUP" in desc["cause"]
    assert len(fake.calls_of("redshift-setup")) == 1
    assert fake.calls_of("dbt-stand-in") == []


def test_console_default_input_reaches_success_without_unknown_fields(sfn, state_machine, fake):
    """The console pre-fills {"Comment": "Insert your JSON here"}; api-extract rejects unknown
    fields, so each window passes only start_date, end_date and scheduled_time on."""
    happy(fake)
    desc, execution = run(sfn, state_machine, {"Comment": "Insert your JSON here"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    api = sorted(fake.calls_of("api-extract"), key=lambda p: p["source"])
    assert api == [{"source": "sessions"}, {"source": "users"}]
    assert all("Comment" not in json.dumps(p) for c, p in fake.calls if c != "run-control")
    (window,) = json.loads(desc["output"])["windows_processed"]
    assert window["window"] == {}
    # The report records the execution's input as it was given.
    (report,) = reports_of(fake)
    assert report["input"] == {"Comment": "Insert your JSON here"}


def test_unknown_fields_are_dropped_from_windows_and_backfills(sfn, state_machine, fake):
    happy(fake)
    payload = {
        "Comment": "backfill",
        "windows": [
            {"start_date": "2020-01-01", "end_date": "2020-01-31", "Comment": "january", "note": 1},
            {"start_date": "2020-02-01", "end_date": "2020-02-29"},
        ],
    }
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    users = sorted((p for p in fake.calls_of("api-extract") if p["source"] == "users"), key=lambda p: p["start_date"])
    assert users == [
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "source": "users"},
        {"start_date": "2020-02-01", "end_date": "2020-02-29", "source": "users"},
    ]
    assert all("Comment" not in json.dumps(p) and "note" not in p for c, p in fake.calls if c != "run-control")
    (report,) = reports_of(fake)
    assert report["input"] == payload and report["windows"] == payload["windows"]

    fake.reset()
    happy(fake)
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-02",
                                               "scheduled_time": "2020-01-03T01:30:00Z", "Comment": "x"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(fake.calls_of("api-extract"), key=lambda p: p["source"]) == [
        {"start_date": "2020-01-01", "end_date": "2020-01-02", "scheduled_time": "2020-01-03T01:30:00Z", "source": "sessions"},
        {"start_date": "2020-01-01", "end_date": "2020-01-02", "scheduled_time": "2020-01-03T01:30:00Z", "source": "users"},
    ]


def test_a_single_date_still_reaches_the_function_which_rejects_it(sfn, state_machine, fake):
    """Filtering keeps what is present: one date alone is passed on, so api-extract answers
    InvalidInput instead of the run silently taking the previous period."""
    happy(fake)
    fake.behaviour["api-extract"] = lambda p: (
        ("error", "InvalidInput", "start_date without end_date") if ("start_date" in p) != ("end_date" in p) else extract_ok(p)
    )
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01"})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "InvalidInput"
    assert {json.dumps(p, sort_keys=True) for p in fake.calls_of("api-extract")} <= {
        json.dumps({"start_date": "2020-01-01", "source": e}, sort_keys=True) for e in ("users", "sessions")
    }


def test_failing_dbt_task_fails_the_execution_and_keeps_the_error(sfn, state_machine, fake):
    """runTask.sync fails with States.TaskFailed when the dbt container exits non-zero. A Lambda
    stand-in may not raise a States.* error (moto refuses the name), so it raises a custom one
    with the same cause: neither is in the ECS Retry list, and Catch States.ALL takes both to
    Pipeline failed with the error kept."""
    happy(fake)
    cause = json.dumps({"TaskArn": TASK_ARN, "StopCode": "EssentialContainerExited",
                        "Containers": [{"Name": "dbt", "ExitCode": 1}]})
    fake.behaviour["dbt-stand-in"] = lambda p: ("error", "DbtTaskFailed", cause)
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "DbtTaskFailed", explain(sfn, execution)
    kept = json.loads(json.loads(desc["cause"])["errorMessage"])
    assert kept["StopCode"] == "EssentialContainerExited" and kept["Containers"][0]["ExitCode"] == 1
    states = entered_states(sfn, execution)
    assert "Pipeline failed" in states and "Pipeline succeeded" not in states
    assert len(fake.calls_of("dbt-stand-in")) == 1, "a failed dbt build is not retried"
    assert len(fake.calls_of("redshift-setup")) == 1


# ------------------------------------------------------------------ run reports
def started_at(desc) -> str:
    """The execution's start as $$.Execution.StartTime gives it (ISO 8601, UTC)."""
    return desc["startDate"].astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def assert_report(report: dict, desc: dict, execution: str, status: str, payload: dict, machine: str = "deftunes-pipeline"):
    """What run-control receives about the execution itself (the rest is per path)."""
    assert (report["execution_arn"], report["execution_name"], report["state_machine"]) == (
        execution, execution.rsplit(":", 1)[1], machine)
    assert (report["status"], report["input"]) == (status, payload)
    when = datetime.datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    assert abs((when - desc["startDate"]).total_seconds()) < 1, (report["started_at"], started_at(desc))
    assert set(report) == {"execution_arn", "execution_name", "state_machine", "started_at", "status", "input",
                           "scheduled", "windows", "map_run", "error"}


def test_a_successful_run_writes_its_report_last_and_its_output_links_it(sfn, state_machine, fake):
    happy(fake)
    payload = {"start_date": "2020-01-01", "end_date": "2020-01-31", "Comment": "january"}
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    (report,) = reports_of(fake)
    assert_report(report, desc, execution, "SUCCEEDED", payload)
    assert (report["scheduled"], report["windows"], report["error"]) == (False, [payload], None)
    output = json.loads(desc["output"])
    # The Map's output (here INLINE: the window summaries; on AWS the ResultWriter's reference).
    assert report["map_run"] == output["windows_processed"] and len(report["map_run"]) == 1
    assert fake.calls[-1] == ("run-control", {"report": report}), "the report comes after dbt"

    name = execution.rsplit(":", 1)[1]
    assert output["report"] == {"json": f"{REPORTS}/{name}/report.json", "html": f"{REPORTS}/{name}/report.html",
                                "last_successful_window": None}
    assert set(output) == {"report", "windows_processed", "scheduled", "catch_up", "dbt"}
    assert entered_states(sfn, execution)[-5:] == ["Run dbt build", "Report size?", "Write run report", "Report written",
                                                   "Pipeline succeeded"]


def test_a_report_retried_after_a_throttle_is_written(sfn, state_machine, fake):
    happy(fake)
    answer, attempts = run_control(), {"n": 0}

    def throttled_once(payload):
        if "report" in payload:
            attempts["n"] += 1
            if attempts["n"] == 1:
                return ("throttle",)
        return answer(payload)

    fake.behaviour["run-control"] = throttled_once
    desc, execution = run(sfn, state_machine, {})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert attempts["n"] == 2 and "json" in json.loads(desc["output"])["report"]


def test_a_report_that_cannot_be_written_does_not_fail_a_served_run(sfn, state_machine, fake):
    """After dbt the data is served: the report's failure (after its retries; here one that is not
    retried) ends the run in success, with report_error instead of the report."""
    happy(fake)
    fake.behaviour["run-control"] = run_control(report_error=("InvalidInput", "map_run: s3://other/x is not in the lake's bucket"))
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert len(reports_of(fake)) == 1 and len(fake.calls_of("dbt-stand-in")) == 1
    output = json.loads(desc["output"])
    assert "report" not in output and output["report_error"]["Error"] == "InvalidInput"
    assert "not in the lake's bucket" in output["report_error"]["Cause"]
    assert set(output) == {"report_error", "windows_processed", "scheduled", "catch_up", "dbt"}
    assert entered_states(sfn, execution)[-3:] == ["Write run report", "Report not written", "Pipeline succeeded"]


def window_fails(fake):
    fake.behaviour["api-extract"] = lambda p: (
        ("error", "InvalidInput", "end_date 2020-01-01 is before start_date 2020-01-31")
        if p["source"] == "sessions" else extract_ok(p))


def dbt_fails(fake):
    fake.behaviour["dbt-stand-in"] = lambda p: ("error", "DbtTaskFailed", json.dumps({"StopCode": "EssentialContainerExited"}))


def quality_fails(fake):
    fake.behaviour["transform"] = lambda p: (
        ("error", "DataQualityFailed", "users: uniqueness(user_id) 0.90 < 0.95")
        if any("/users/" in k for k in p["keys"]) else transform_ok(p))


FAILURES = {
    # (how it fails, error, the Fail state, whether the Map had finished)
    "window": (window_fails, "InvalidInput", "Pipeline failed", False),
    "data-quality": (quality_fails, "DataQualityFailed", "Data quality failed", False),
    "dbt": (dbt_fails, "DbtTaskFailed", "Pipeline failed", True),
}


@pytest.mark.parametrize("report_fails", [False, True], ids=["report-written", "report-fails"])
@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_run_is_reported_and_ends_with_its_own_error(sfn, state_machine, fake, case, report_fails):
    """Every failure first goes through Write failure report (status FAILED, with the error the
    run ends with), then its Fail state; a report that cannot be written changes nothing: the
    run still fails with its original error and cause."""
    fail, error, fail_state, map_done = FAILURES[case]
    happy(fake)
    fail(fake)
    if report_fails:
        fake.behaviour["run-control"] = run_control(report_error=("Configuration", "REPORTS_PREFIX is not a key prefix"))
    payload = {"start_date": "2020-01-01", "end_date": "2020-01-31"}
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == error, explain(sfn, execution)
    (report,) = reports_of(fake)
    assert_report(report, desc, execution, "FAILED", payload)
    assert report["error"] == {"Error": desc["error"], "Cause": desc["cause"]}
    assert (report["scheduled"], report["windows"]) == (False, [payload])
    assert (report["map_run"] is not None) == map_done
    states = entered_states(sfn, execution)
    assert states[-1] == fail_state and "Write failure report" in states[-3:], states
    assert "Write run report" not in states and "Pipeline succeeded" not in states


def test_a_catch_up_that_cannot_be_planned_fails_the_run_through_the_failure_report(sfn, state_machine, fake):
    """A frontier run-control cannot read (or any planning error) fails the scheduled run before
    any window: reported as scheduled, without windows, with the planning error."""
    happy(fake)
    message = "the catch-up frontier s3://lake/state/deftunes/last-successful-window.json is not readable: delete it"
    fake.behaviour["run-control"] = run_control(plan_error=("Configuration", message))
    payload = {"scheduled_time": "2020-02-01T01:30:00Z"}
    desc, execution = run(sfn, state_machine, payload)
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "Configuration" and message in desc["cause"]
    assert len(plans_of(fake)) == 1, "a Configuration error is not retried"
    assert fake.calls_of("api-extract") == fake.calls_of("songs-extract") == fake.calls_of("redshift-setup") == []
    (report,) = reports_of(fake)
    assert_report(report, desc, execution, "FAILED", payload)
    assert (report["scheduled"], report["windows"], report["map_run"]) == (True, None, None)
    assert report["error"] == {"Error": "Configuration", "Cause": desc["cause"]}
    assert entered_states(sfn, execution) == ["Plan windows", "Plan catch-up", "Catch-up not planned", "Failure report size?",
                                              "Write failure report", "Data quality?", "Pipeline failed"]


# ------------------------------------------------------------------ files-only pipelines (sparkify)
def files_only_values() -> dict:
    """What modules/pipeline passes for a pipeline without extracts: no extract function."""
    values = fake_definition_values(FUNCTION_ARNS)
    values["function_arns"] = {c: a for c, a in values["function_arns"].items() if c in PIPELINE_FUNCTIONS}
    values["extracts"] = tp.deploy_json("sparkify")["extracts"]
    assert values["extracts"] == []
    return values


@pytest.fixture(scope="module")
def files_only(sfn):
    definition = json.loads(tp.render_template(files_only_values()))
    sfn.create_state_machine(name="sparkify-pipeline-as-rendered", definition=json.dumps(definition), roleArn=ROLE_ARN)
    arn = sfn.create_state_machine(name="sparkify-pipeline", definition=json.dumps(with_dbt_stand_in(definition)),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    return definition, arn


def test_files_only_state_machine_goes_straight_to_serving(files_only, rendered):
    definition, _ = files_only
    assert definition["StartAt"] == "Files only"
    assert set(definition["States"]) == {"Files only", "Set up Redshift", "Run dbt build", "Write run report", "Report written",
                                         "Report not written", "Pipeline succeeded", "Write failure report", "Pipeline failed"}
    assert definition["States"]["Files only"] == {
        "Type": "Pass", "Comment": definition["States"]["Files only"]["Comment"], "Parameters": {"input.$": "$"},
        "Next": "Set up Redshift"}
    assert "no window" in definition["Comment"].lower()
    # Serving is the same as a pipeline with extracts, but for the reports' size guards (no windows).
    for name in ("Set up Redshift", "Run dbt build", "Pipeline failed"):
        files_only_state = json.dumps(definition["States"][name])
        assert json.loads(files_only_state.replace('"Write failure report"', '"Failure report size?"').replace(
            '"Next": "Write run report"', '"Next": "Report size?"')) == rendered["States"][name], name
    assert not re.search(r"api-extract|songs-extract", json.dumps(definition))
    # No window and no Map: the reports say so, and the output keeps the input.
    for name in ("Write run report", "Write failure report"):
        report = definition["States"][name]["Parameters"]["Payload"]["report"]
        assert (report["scheduled"], report["windows"], report["map_run"]) == (False, None, None), name
    assert definition["States"]["Write failure report"]["Next"] == "Pipeline failed"
    assert definition["States"]["Report written"]["Parameters"] == {"report.$": "$.report.written", "input.$": "$.input",
                                                                    "dbt.$": "$.dbt"}


@pytest.mark.parametrize("payload", [
    {}, {"Comment": "Insert your JSON here"}, {"scheduled_time": "2020-02-01T01:30:00Z"},
    {"windows": [{"start_date": "2020-01-01", "end_date": "2020-01-31"}]},
], ids=["empty", "console", "scheduled", "windows"])
def test_files_only_run_serves_once_whatever_the_input(sfn, files_only, fake, payload):
    _, arn = files_only
    happy(fake)
    desc, execution = run(sfn, arn, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert fake.calls_of("api-extract") == fake.calls_of("songs-extract") == fake.calls_of("transform") == []
    assert fake.calls_of("redshift-setup") == [{}]
    assert len(fake.calls_of("dbt-stand-in")) == 1
    output = json.loads(desc["output"])
    assert output["input"] == payload and output["dbt"]["task_arn"] == TASK_ARN
    assert entered_states(sfn, execution) == ["Files only", "Set up Redshift", "Run dbt build", "Write run report",
                                              "Report written", "Pipeline succeeded"]
    assert plans_of(fake) == [], "a files-only pipeline has no window to plan"
    (report,) = reports_of(fake)
    assert_report(report, desc, execution, "SUCCEEDED", payload, machine="sparkify-pipeline")
    assert (report["scheduled"], report["windows"], report["map_run"], report["error"]) == (False, None, None, None)
    name = execution.rsplit(":", 1)[1]
    assert output["report"]["html"] == f"{REPORTS}/{name}/report.html"


def test_files_only_failures_keep_the_error(sfn, files_only, fake):
    _, arn = files_only
    happy(fake)
    fake.behaviour["redshift-setup"] = lambda p: ("error", "WarehouseRejected", "permission denied for schema sparkify_serving")
    desc, execution = run(sfn, arn, {})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "WarehouseRejected" and "sparkify_serving" in desc["cause"]
    assert fake.calls_of("dbt-stand-in") == []
    (report,) = reports_of(fake)
    assert_report(report, desc, execution, "FAILED", {}, machine="sparkify-pipeline")
    assert report["error"] == {"Error": "WarehouseRejected", "Cause": desc["cause"]}

    fake.reset()
    happy(fake)
    fake.behaviour["dbt-stand-in"] = lambda p: ("error", "DbtTaskFailed", json.dumps({"StopCode": "EssentialContainerExited"}))
    desc, execution = run(sfn, arn, {})
    assert desc["status"] == "FAILED" and desc["error"] == "DbtTaskFailed", explain(sfn, execution)
    assert entered_states(sfn, execution)[-2:] == ["Write failure report", "Pipeline failed"]
    (report,) = reports_of(fake)
    assert report["status"] == "FAILED" and report["error"] == {"Error": "DbtTaskFailed", "Cause": desc["cause"]}

    # A report that cannot be written keeps the run's error.
    fake.reset()
    happy(fake)
    dbt_fails(fake)
    fake.behaviour["run-control"] = run_control(report_error=("InvalidInput", "no such table"))
    desc, execution = run(sfn, arn, {})
    assert desc["status"] == "FAILED" and desc["error"] == "DbtTaskFailed", explain(sfn, execution)
    assert len(reports_of(fake)) == 1


def test_extracts_need_their_function_in_function_arns():
    """The template looks each extract's function up in function_arns: a pipeline with extracts
    whose function was not deployed does not render (the orchestration module's validation says
    why first)."""
    values = files_only_values()
    values["extracts"] = tp.deploy_json("deftunes")["extracts"]
    with pytest.raises(RuntimeError, match="Invalid index"):
        tp.render_template(values)
    (validation,) = [v for v in tp.blocks(tp.MODULES_DIR / "orchestration", "variable")["extracts"]["validation"]
                     if "function_arns" in v["condition"]]
    assert validation["condition"] == "${alltrue([for e in var.extracts : contains(keys(var.function_arns), e.function)])}"


# ------------------------------------------------------------------ backfills at scale (Distributed Map)
HISTORY_LIMIT = 25_000        # events in one execution's history
PAYLOAD_LIMIT = 256 * 1024    # bytes of an execution's input, and of any state's input or output
THREE_YEARS_OF_DAYS = 1_100


def daily_windows(n: int, scheduled: bool = False) -> list[dict]:
    """n one-day windows from 2020-01-01, as a backfill of daily windows gives them."""
    first = datetime.date(2020, 1, 1)
    out = []
    for i in range(n):
        day = (first + datetime.timedelta(days=i)).isoformat()
        window = {"start_date": day, "end_date": day}
        if scheduled:
            window["scheduled_time"] = f"{day}T01:30:00Z"
        out.append(window)
    return out


def size(value) -> int:
    """Bytes of a value as Step Functions counts a payload (its UTF-8 JSON)."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def _task_events(state: dict, worst: bool) -> int:
    """TaskStateEntered/Exited, and per attempt TaskScheduled, TaskStarted (TaskSubmitted for a
    .sync task), TaskSucceeded or TaskFailed. Worst: every Retry used up (MaxAttempts defaults to 3)."""
    attempts = 1 + (sum(r.get("MaxAttempts", 3) for r in state.get("Retry", [])) if worst else 0)
    return 2 + attempts * (4 if state["Resource"].endswith(".sync") else 3)


def _states_events(states: dict, items: int, worst: bool) -> int:
    """An upper bound of the history events of running these states: each state counted once,
    also those on exclusive paths (Choice branches, catchers). A Map in INLINE mode records every
    iteration in this history; a DISTRIBUTED one only its Map Run (MapRunStarted and
    MapRunSucceeded or MapRunFailed): each item is a child execution with its own history."""
    total = 0
    for state in states.values():
        kind = state["Type"]
        if kind == "Task":
            total += _task_events(state, worst)
        elif kind == "Parallel":
            total += 4 + sum(_states_events(b["States"], items, worst) for b in state["Branches"])
        elif kind == "Map":
            processor = state["ItemProcessor"]
            if processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED":
                total += 6
            else:
                total += 4 + items * (2 + _states_events(processor["States"], items, worst))
        else:
            total += 2
    return total


def parent_events(definition: dict, items: int, worst: bool = False) -> int:
    return 2 + _states_events(definition["States"], items, worst)


def child_events(definition: dict, worst: bool = False) -> int:
    """One window's child execution: ExecutionStarted/Succeeded and the item's states."""
    return 2 + _states_events(definition["States"]["Process windows"]["ItemProcessor"]["States"], 1, worst)


def history(sfn, execution) -> list[dict]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=execution, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def test_each_pipelines_windows_map_is_distributed_with_its_concurrency():
    """Rendered with what modules/pipeline_settings gives each pipeline (Terraform's own
    evaluation): a pipeline with extracts gets a DISTRIBUTED Map of STANDARD child executions, its
    backfill_max_concurrency (the pipeline's override, else the top-level default), no tolerated
    failure, and its own map results prefix; a files-only pipeline has no Map."""
    default = tp.variable_default(tp.TF_DIR, "backfill_max_concurrency")
    assert default == 10
    for pipelines, expected in (({"deftunes": {}, "sparkify": {}}, default),
                                ({"deftunes": {"backfill_max_concurrency": 3}, "sparkify": {}}, 3)):
        planned = tp.plan_settings(pipelines)
        assert planned["sparkify"]["backfill_max_concurrency"] == default
        for pipeline, settings in planned.items():
            values = {**fake_definition_values(FUNCTION_ARNS), "extracts": settings["extracts"],
                      "backfill_max_concurrency": settings["backfill_max_concurrency"],
                      "map_results_prefix": settings["map_results_prefix"]}
            if not settings["extracts"]:
                values["function_arns"] = {c: a for c, a in values["function_arns"].items() if c in PIPELINE_FUNCTIONS}
            definition = json.loads(tp.render_template(values))
            maps = [n for n, s in iter_states(definition["States"]) if s["Type"] == "Map"]
            if not settings["extracts"]:
                assert maps == [], pipeline
                continue
            assert maps == ["Process windows"], pipeline
            process = definition["States"]["Process windows"]
            assert process["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
            assert process["MaxConcurrency"] == expected == settings["backfill_max_concurrency"], pipeline
            assert process["ToleratedFailureCount"] == 0 and "ToleratedFailurePercentage" not in process
            assert process["ItemsPath"] == "$.windows" and process["Label"] == "windows"
            assert process["ResultWriter"] == {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {
                "Bucket": MAP_RESULTS_BUCKET, "Prefix": f"reports/map-results/{pipeline}"}}
            assert settings["map_results_prefix"] == f"reports/map-results/{pipeline}"
            assert process["ResultPath"] == "$.windows_processed" and "ResultSelector" not in process


def test_the_item_processor_is_what_the_inline_map_ran(rendered):
    """Only the Map's mode and its distributed fields changed: INLINE again (as_inline), the
    definition is the one-window-at-a-time logic (item states, ItemSelector, Retry of each task,
    Catch of the Map) with the concurrency as the only other setting."""
    inline = as_inline(rendered)["States"]["Process windows"]
    assert inline["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert set(inline) == {"Type", "Comment", "ItemsPath", "MaxConcurrency", "ItemSelector", "ItemProcessor",
                           "ResultPath", "Catch", "Next"}
    catches = [(c["ErrorEquals"], c["Next"]) for c in inline["Catch"]]
    assert catches == [(["States.ExceedToleratedFailureThreshold"], "Find the failed window"),
                       (["States.ALL"], "Failure report size?")]
    assert all(c["ResultPath"] == "$.error" for c in inline["Catch"])
    item = inline["ItemProcessor"]["States"]
    assert inline["ItemProcessor"]["StartAt"] == "Keep start_date?" and "Window done" in item
    assert all(s.get("Catch") is None for s in item.values()), "a window's error must reach the Map (fail the child)"


def test_failed_window_lookup_states(rendered):
    """After a failed Map Run, the run looks up the failed child (Step Functions SDK calls, with
    exactly these parameters), and every step that cannot find it keeps the Map Run's error."""
    states = rendered["States"]
    lookups = {n: s for n, s in states.items() if s.get("Resource", "").startswith(SFN_SDK)}
    assert {n: (s["Resource"][len(SFN_SDK):], s["Parameters"]) for n, s in lookups.items()} == {
        "Find the failed window": ("listMapRuns", {"ExecutionArn.$": "$$.Execution.Id"}),
        "List the failed windows": ("listExecutions", {"MapRunArn.$": "$.failed_window.map_runs[0].MapRunArn",
                                                       "StatusFilter": "FAILED", "MaxResults": 1}),
        "Describe the failed window": ("describeExecution", {"ExecutionArn.$": "$.failed_window.listed.executions[0].ExecutionArn"}),
    }
    for name, state in lookups.items():
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.lookup_error", "Next": "Failure report size?"}], name
        assert state["ResultPath"].startswith("$.failed_window"), name
    for name in ("Map Run found?", "Failed window found?", "Window error known?"):
        assert states[name]["Type"] == "Choice" and states[name]["Default"] == "Failure report size?", name
    # After the failure report, the error decides the Fail state: the window's own error, when found.
    assert states["Data quality?"]["Choices"] == [
        {"Variable": "$.error.Error", "StringEquals": "DataQualityFailed", "Next": "Data quality failed"}]
    assert states["Data quality?"]["Default"] == "Pipeline failed"
    assert states["Keep the window's error"]["ResultPath"] == "$.error"
    assert states["Keep the window's error"]["Next"] == "Failure report size?"


def test_distributed_backfill_runs_on_moto(sfn, distributed, fake):
    """Three windows through the DISTRIBUTED Map as rendered: every window's extracts and
    transforms, serving once; the output keeps only the ResultWriter's reference (its manifest
    written under the pipeline's map results prefix), whatever the number of windows; the
    parent's history holds the Map Run, not the windows."""
    happy(fake)
    desc, execution = run(sfn, distributed, {"windows": BACKFILL})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(p["start_date"] for p in fake.calls_of("api-extract") if p["source"] == "sessions") == [
        w["start_date"] for w in BACKFILL]
    assert len(fake.calls_of("songs-extract")) == 3 and len(fake.calls_of("transform")) == 9
    assert len(fake.calls_of("redshift-setup")) == 1 and len(fake.calls_of("dbt-stand-in")) == 1

    processed = json.loads(desc["output"])["windows_processed"]
    assert set(processed) == {"MapRunArn", "ResultWriterDetails"}
    assert processed["MapRunArn"].startswith(f"arn:aws:states:{REGION}:123456789012:mapRun:deftunes-pipeline-distributed/")
    map_run_id = processed["MapRunArn"].rsplit(":", 1)[1]
    key = f"reports/map-results/deftunes/{map_run_id}/manifest.json"
    assert processed["ResultWriterDetails"] == {"Bucket": MAP_RESULTS_BUCKET, "Key": key}
    (put,) = fake.s3_puts
    assert put[:2] == (MAP_RESULTS_BUCKET, key) and json.loads(put[2])["MapRunArn"] == processed["MapRunArn"]
    # run-control reads the windows' results from there.
    (report,) = reports_of(fake)
    assert report["map_run"] == processed and report["windows"] == BACKFILL

    events = history(sfn, execution)
    types = [e["type"] for e in events]
    assert {"MapRunStarted", "MapRunSucceeded"} <= set(types)
    assert not {"MapIterationStarted", "TaskScheduled"} & {t for t in types[types.index("MapRunStarted"):types.index("MapRunSucceeded")]}

    # One window: the same parent history and an output of the same size.
    fake.reset()
    happy(fake)
    one, one_execution = run(sfn, distributed, {"windows": BACKFILL[:1]})
    assert one["status"] == "SUCCEEDED", explain(sfn, one_execution)
    assert len(history(sfn, one_execution)) == len(events)
    assert size(json.loads(one["output"])["windows_processed"]) == size(processed)


def test_a_failed_window_fails_the_distributed_map_run(sfn, distributed, fake):
    """On AWS a failed child execution fails the Map Run (ToleratedFailureCount 0) and serving
    never runs. Skipped while moto does not apply the threshold."""
    happy(fake)
    fake.behaviour["transform"] = lambda p: (
        ("error", "DataQualityFailed", "users: uniqueness(user_id) 0.90 < 0.95")
        if any("/users/" in k for k in p["keys"]) else transform_ok(p))
    desc, execution = run(sfn, distributed, {"windows": BACKFILL})
    if desc["status"] == "SUCCEEDED":
        pytest.skip("moto 5.2.5 runs a DISTRIBUTED Map's items in-process and never applies the tolerated failure "
                    "threshold: the failed windows become null, the Map Run succeeds and serving runs. A failed window "
                    "is executed on the INLINE form (as_inline: the window's own error reaches the Map's Catch) and on "
                    "as_failed_map_run (AWS's States.ExceedToleratedFailureThreshold, then the lookup of the child's error)")
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert fake.calls_of("redshift-setup") == []


CHILD_ARN = "arn:aws:states:us-east-1:123456789012:execution:deftunes-pipeline/windows:4f1c2a"
MAP_RUN_ARN = "arn:aws:states:us-east-1:123456789012:mapRun:deftunes-pipeline/windows:9d2e7b"


def moto_scalar(value):
    """moto, unlike AWS (and LocalStack, whose engine it copies), returns a value reached through
    an array index followed by a field ("$.a[0].b") as a one-element list (its fix of
    getmoto/moto#7825). AWS gives the value itself: unwrap exactly that case."""
    if isinstance(value, list):
        assert len(value) == 1 and isinstance(value[0], str), value
        return value[0]
    return value


def sfn_api(describe: dict | None = None, executions: list | None = None, fail: str | None = None):
    """The stand-in of the Step Functions API: what ListMapRuns, ListExecutions (FAILED) and
    DescribeExecution answer about the failed window (`describe`), or an error of `fail`. The
    parameters it received are recorded as AWS would pass them (`moto_scalar`)."""
    def answer(payload):
        payload["parameters"] = {k: moto_scalar(v) for k, v in payload["parameters"].items()}
        api = payload["api"]
        if api == fail:
            return ("error", "AccessDenied", f"not authorized to perform states:{api[0].upper()}{api[1:]}")
        if api == "listMapRuns":
            return ("ok", {"MapRuns": [{"MapRunArn": MAP_RUN_ARN, "ExecutionArn": payload["parameters"]["ExecutionArn"]}]})
        if api == "listExecutions":
            return ("ok", {"Executions": [{"ExecutionArn": CHILD_ARN, "Status": "FAILED"}] if executions is None else executions})
        if api == "describeExecution":
            return ("ok", {"ExecutionArn": CHILD_ARN, "Status": "FAILED", **(describe or {})})
        return ("error", "Unexpected", api)
    return answer


def lambda_error_cause(error: str, message: str) -> str:
    """A failed Lambda task's cause, as the child execution's DescribeExecution reports it."""
    return json.dumps({"errorMessage": message, "errorType": error})


def test_a_failed_map_run_ends_like_its_window_data_quality(sfn, failed_map_run, fake):
    happy(fake)
    fake.behaviour["transform"] = lambda p: (
        ("error", "DataQualityFailed", "users: uniqueness(user_id) 0.90 < 0.95")
        if any("/users/" in k for k in p["keys"]) else transform_ok(p))
    cause = lambda_error_cause("DataQualityFailed", "users: uniqueness(user_id) 0.90 < 0.95")
    fake.behaviour["sfn-stand-in"] = sfn_api(describe={"Error": "DataQualityFailed", "Cause": cause})
    desc, execution = run(sfn, failed_map_run, {"windows": BACKFILL})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "DataQualityFailed" and desc["cause"] == cause
    states = entered_states(sfn, execution)
    lookup = ["Find the failed window", "Map Run found?", "List the failed windows", "Failed window found?",
              "Describe the failed window", "Window error known?", "Keep the window's error", "Failure report size?",
              "Write failure report", "Data quality?", "Data quality failed"]
    assert states[-len(lookup):] == lookup, states
    (report,) = reports_of(fake)
    assert report["status"] == "FAILED" and report["error"] == {"Error": "DataQualityFailed", "Cause": cause}
    assert "Pipeline failed" not in states and fake.calls_of("redshift-setup") == []
    assert [(p["api"], p["parameters"]) for p in fake.calls_of("sfn-stand-in")] == [
        ("listMapRuns", {"ExecutionArn": execution}),
        ("listExecutions", {"MapRunArn": MAP_RUN_ARN, "StatusFilter": "FAILED", "MaxResults": 1}),
        ("describeExecution", {"ExecutionArn": CHILD_ARN}),
    ]


@pytest.mark.parametrize("case", ["window-error", "lookup-denied", "no-failed-child", "no-cause"])
def test_a_failed_map_run_ends_in_pipeline_failed(sfn, failed_map_run, fake, case):
    """Any other window error ends in Pipeline failed with the window's error and cause; when the
    lookup cannot tell (denied, no failed child listed, no cause), with the Map Run's own error."""
    happy(fake)
    fake.behaviour["api-extract"] = lambda p: (
        ("error", "InvalidInput", "end_date 2020-01-01 is before start_date 2020-01-31")
        if p["source"] == "sessions" else extract_ok(p))
    cause = lambda_error_cause("InvalidInput", "end_date 2020-01-01 is before start_date 2020-01-31")
    fake.behaviour["sfn-stand-in"] = {
        "window-error": sfn_api(describe={"Error": "InvalidInput", "Cause": cause}),
        "lookup-denied": sfn_api(fail="listExecutions"),
        "no-failed-child": sfn_api(executions=[]),
        "no-cause": sfn_api(describe={"Error": "InvalidInput"}),
    }[case]
    desc, execution = run(sfn, failed_map_run, {"windows": BACKFILL})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    states = entered_states(sfn, execution)
    assert states[-3:] == ["Write failure report", "Data quality?", "Pipeline failed"], states
    assert "Data quality failed" not in states and fake.calls_of("redshift-setup") == []
    (report,) = reports_of(fake)
    assert report["error"] == {"Error": desc["error"], "Cause": desc["cause"]}
    if case == "window-error":
        assert (desc["error"], desc["cause"]) == ("InvalidInput", cause)
    else:
        # On AWS: States.ExceedToleratedFailureThreshold (see as_failed_map_run).
        assert desc["error"] == MAP_RUN_FAILED and "threshold" in desc["cause"], desc
    apis = [p["api"] for p in fake.calls_of("sfn-stand-in")]
    if case == "lookup-denied":
        assert apis == ["listMapRuns"] + ["listExecutions"] * 3, apis  # retried twice, then given up
    elif case == "no-failed-child":
        assert apis == ["listMapRuns", "listExecutions"]


def test_history_stays_within_the_limit_for_three_years_of_daily_windows(sfn, state_machine, rendered, fake):
    """1,100 windows: the inline Map would write every window's events into the one history
    (past 25,000 even without a retry); the Distributed Map's parent history does not depend on
    the number of windows, and each window's child history stays far below the limit with every
    retry used up. The per-window estimate is checked against moto's history of the same
    definition (INLINE, 1 and 3 windows)."""
    inline = as_inline(rendered)
    counts = {}
    for n in (1, 3):
        fake.reset()
        happy(fake)
        desc, execution = run(sfn, state_machine, {"windows": BACKFILL[:n]})
        assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
        counts[n] = len(history(sfn, execution))
    per_window_moto = (counts[3] - counts[1]) / 2
    per_window = parent_events(inline, 2) - parent_events(inline, 1)
    assert per_window_moto <= per_window <= 1.25 * per_window_moto, (per_window_moto, per_window)
    assert counts[3] <= parent_events(inline, 3)

    assert parent_events(inline, THREE_YEARS_OF_DAYS) > HISTORY_LIMIT, "the inline Map would have been fine"
    assert parent_events(rendered, 1, worst=True) == parent_events(rendered, THREE_YEARS_OF_DAYS, worst=True)
    # Counting every state once (the catch-up plan, both reports, the lookup) with every retry used.
    assert parent_events(rendered, THREE_YEARS_OF_DAYS, worst=True) < 300
    assert child_events(rendered, worst=True) < 1_000 < HISTORY_LIMIT


def test_payloads_stay_within_the_limit_for_three_years_of_daily_windows(rendered):
    """The execution input of 1,100 daily windows (with every field a window may carry), what
    each child execution receives, and the Map's output: a reference of bounded size whatever
    the number of windows (ResultWriter), where the inline Map's array of window summaries would
    not fit."""
    windows = daily_windows(THREE_YEARS_OF_DAYS, scheduled=True)
    execution_input = {"windows": windows}
    assert size(execution_input) < PAYLOAD_LIMIT / 2, size(execution_input)
    per_window = size(execution_input) / len(windows)
    assert PAYLOAD_LIMIT / per_window > 2 * THREE_YEARS_OF_DAYS  # room for ~2,700 such windows in one input

    # A child's input: the Map's ItemSelector for one window.
    selector = rendered["States"]["Process windows"]["ItemSelector"]
    child_input = {k.removesuffix(".$"): (windows[0] if v == "$$.Map.Item.Value" else v) for k, v in selector.items()}
    assert size(child_input) < 1024

    # The Map's result: the ResultWriter's reference (MapRunArn is at most 2,000 characters, a
    # bucket name 63, the key <prefix>/<map run id>/manifest.json), added to the input.
    writer = rendered["States"]["Process windows"]["ResultWriter"]["Parameters"]
    bound = size({"MapRunArn": "a" * 2000, "ResultWriterDetails": {
        "Bucket": "b" * 63, "Key": writer["Prefix"] + "/" + str(uuid.uuid4()) + "/manifest.json"}})
    assert size(execution_input) + bound < PAYLOAD_LIMIT
    assert bound < 2.5 * 1024

    # The run reports: run-control receives the execution's input and its windows (a backfill's
    # are the input's, so they count twice), the Map's reference and, on failure, the error (a
    # cause holds at most 32,768 characters).
    map_run = {"MapRunArn": "a" * 2000, "ResultWriterDetails": {"Bucket": "b" * 63, "Key": "k" * 200}}
    error = {"Error": "e" * 256, "Cause": "c" * 32_768}
    for name in ("Write run report", "Write failure report"):
        assert set(rendered["States"][name]["Parameters"]["Payload"]["report"]) == {
            "execution_arn.$", "execution_name.$", "state_machine.$", "started_at.$", "status", "input.$",
            "scheduled.$", "windows.$", "map_run.$", "error" if name == "Write run report" else "error.$"}

    def report_payload(execution_input, windows):
        return {"report": {"execution_arn": "x" * 1024, "execution_name": "x" * 80, "state_machine": "x" * 80,
                           "started_at": "2020-01-01T00:00:00.000Z", "status": "FAILED", "input": execution_input,
                           "scheduled": False, "windows": windows, "map_run": map_run, "error": error}}
    # Up to the guards' limit (test_report_size_guards) both fit; past it the windows are left out.
    limit = report_window_limit(rendered)
    assert len(windows) == limit
    assert size(report_payload(execution_input, windows)) < PAYLOAD_LIMIT, size(report_payload(execution_input, windows))
    above = {"windows": daily_windows(limit + 1, scheduled=True)}
    assert size(report_payload(above, above["windows"])) > PAYLOAD_LIMIT - 32_768, "the guard is needed"
    # The input itself is in every report: the longest backfills the README allows (4,000 daily
    # windows, 2,000 with a scheduled_time each) are reported, windows left out, with a failure's
    # longest cause; a quarter more would not be.
    for count, scheduled in ((4_000, False), (2_000, True)):
        longest = {"windows": daily_windows(count, scheduled=scheduled)}
        assert size(report_payload(longest, None)) < PAYLOAD_LIMIT, (count, size(report_payload(longest, None)))
        beyond = {"windows": daily_windows(count * 5 // 4, scheduled=scheduled)}
        assert size(report_payload(beyond, None)) > PAYLOAD_LIMIT, count

    # A scheduled run at the catch-up cap: the planned windows are the state the Map reads, and
    # what the report receives (the input is only the scheduled time).
    (condition,) = [v["condition"] for v in tp.blocks(tp.TF_DIR, "variable")["catch_up_max_windows"]["validation"]]
    cap = int(re.search(r"<= (\d+)", condition).group(1))
    planned = [{"start_date": w["start_date"], "end_date": w["end_date"]} for w in daily_windows(cap)]
    state = {"windows": planned, "scheduled": True, "catch_up": {"last_successful": planned[0], "planned": cap, "capped": True},
             "windows_processed": map_run}
    assert size(state) < PAYLOAD_LIMIT / 2, size(state)
    assert size(report_payload({"scheduled_time": "2020-01-01T01:30:00Z"}, planned)) < PAYLOAD_LIMIT


def test_window_summaries_would_not_fit_in_the_state(sfn, state_machine, fake):
    """Why the summaries go to S3: the inline Map's output for 1,100 windows, at the size of the
    smallest summary (one key per source, from the fakes), is past 256 KiB."""
    happy(fake)
    desc, execution = run(sfn, state_machine, {"windows": BACKFILL[:1]})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    (summary,) = json.loads(desc["output"])["windows_processed"]
    assert size(summary) * THREE_YEARS_OF_DAYS > PAYLOAD_LIMIT, size(summary)
