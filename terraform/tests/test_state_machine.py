"""The rendered state machine in moto's Step Functions (which executes ASL for real).

moto's Step Functions calls Lambda through http://localhost:$MOTO_PORT. We start moto on
one free port and point MOTO_PORT at a second, where a small fake of the Lambda Invoke API
answers with canned results per function, and records what each function received. That gives per-function results (the Parallel
branches run concurrently, so moto's own queue of Lambda results would be consumed in a
random order) and real function errors (X-Amz-Function-Error + errorType), which moto's
Lambda never returns."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
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
from test_workspace import fake_definition_values, terraform_function_arns

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
        self.lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.behaviour = {}
            self.calls = []

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


@pytest.fixture(scope="module")
def rendered():
    return json.loads(tp.render_template(fake_definition_values(FUNCTION_ARNS)))


@pytest.fixture(scope="module")
def state_machine(sfn, rendered):
    # The definition exactly as Terraform renders it: moto validates it at creation.
    sfn.create_state_machine(name="deftunes-pipeline-as-rendered", definition=json.dumps(rendered), roleArn=ROLE_ARN)
    return sfn.create_state_machine(
        name="deftunes-pipeline", definition=json.dumps(with_dbt_stand_in(rendered)), roleArn=ROLE_ARN
    )["stateMachineArn"]


@pytest.fixture
def fake(fake_aws):
    fake_aws.reset()
    return fake_aws


# ------------------------------------------------------------------ canned results
def extract_ok(payload):
    source = f"api/{payload['endpoint']}" if "endpoint" in payload else "rds/songs"
    day = payload.get("start_date", "2020-01-01")
    key = f"landing_zone/{source}/ingest_on={day}/part-00000.jsonl"
    return ("ok", {
        "source": source, "start_date": payload.get("start_date", day), "end_date": payload.get("end_date", day),
        "ingest_date": day, "objects": [{"key": key, "records": 10, "bytes": 1000}],
        "keys": [key], "records": 10, "bytes": 1000,
    })


def transform_ok(payload):
    return ("ok", {"outcomes": [{"key": k, "status": "committed"} for k in payload["keys"]]})


def happy(fake):
    fake.behaviour.update({
        "api-extract": extract_ok,
        "songs-extract": extract_ok,
        "transform": transform_ok,
        "redshift-setup": lambda p: ("ok", {"statements": 5}),
        "dbt-stand-in": lambda p: ("ok", {"TaskArn": TASK_ARN, "LastStatus": "STOPPED"}),
    })


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


def test_happy_path_with_a_window(sfn, state_machine, fake):
    happy(fake)
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)

    api = sorted(fake.calls_of("api-extract"), key=lambda p: p["endpoint"])
    assert api == [
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "endpoint": "sessions"},
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "endpoint": "users"},
    ]
    assert fake.calls_of("songs-extract") == [{}]
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


def test_no_input_and_scheduled_input_let_the_function_derive_the_window(sfn, state_machine, fake):
    happy(fake)
    desc, execution = run(sfn, state_machine, {})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(p["endpoint"] for p in fake.calls_of("api-extract")) == ["sessions", "users"]
    assert all(set(p) == {"endpoint"} for p in fake.calls_of("api-extract"))

    fake.reset()
    happy(fake)
    desc, execution = run(sfn, state_machine, {"scheduled_time": "2020-02-01T01:30:00Z"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(fake.calls_of("api-extract"), key=lambda p: p["endpoint"]) == [
        {"scheduled_time": "2020-02-01T01:30:00Z", "endpoint": "sessions"},
        {"scheduled_time": "2020-02-01T01:30:00Z", "endpoint": "users"},
    ]


def test_backfill_runs_the_windows_in_order_then_serving_once(sfn, state_machine, fake):
    happy(fake)
    windows = [
        {"start_date": "2020-01-01", "end_date": "2020-01-31"},
        {"start_date": "2020-02-01", "end_date": "2020-02-29"},
        {"start_date": "2020-03-01", "end_date": "2020-03-31"},
    ]
    desc, execution = run(sfn, state_machine, {"windows": windows})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    users = [p["start_date"] for p in fake.calls_of("api-extract") if p["endpoint"] == "users"]
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
        if p["endpoint"] == "sessions" else extract_ok(p)
    )
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-31", "end_date": "2020-01-01"})
    assert desc["status"] == "FAILED", desc
    assert desc["error"] == "InvalidInput"
    assert "before start_date" in desc["cause"]
    states = entered_states(sfn, execution)
    assert "Pipeline failed" in states and "Pipeline succeeded" not in states
    # Not retried, and nothing downstream ran.
    assert [p["endpoint"] for p in fake.calls_of("api-extract")].count("sessions") == 1
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
    assert "Data quality failed" in entered_states(sfn, execution)
    assert fake.calls_of("redshift-setup") == []


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
    api = sorted(fake.calls_of("api-extract"), key=lambda p: p["endpoint"])
    assert api == [{"endpoint": "sessions"}, {"endpoint": "users"}]
    assert all("Comment" not in json.dumps(p) for _, p in fake.calls)
    (window,) = json.loads(desc["output"])["windows_processed"]
    assert window["window"] == {}


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
    users = [p for p in fake.calls_of("api-extract") if p["endpoint"] == "users"]
    assert users == [
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "endpoint": "users"},
        {"start_date": "2020-02-01", "end_date": "2020-02-29", "endpoint": "users"},
    ]
    assert all("Comment" not in json.dumps(p) and "note" not in p for _, p in fake.calls)

    fake.reset()
    happy(fake)
    desc, execution = run(sfn, state_machine, {"start_date": "2020-01-01", "end_date": "2020-01-02",
                                               "scheduled_time": "2020-01-03T01:30:00Z", "Comment": "x"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(fake.calls_of("api-extract"), key=lambda p: p["endpoint"]) == [
        {"start_date": "2020-01-01", "end_date": "2020-01-02", "scheduled_time": "2020-01-03T01:30:00Z", "endpoint": "sessions"},
        {"start_date": "2020-01-01", "end_date": "2020-01-02", "scheduled_time": "2020-01-03T01:30:00Z", "endpoint": "users"},
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
        json.dumps({"start_date": "2020-01-01", "endpoint": e}, sort_keys=True) for e in ("users", "sessions")
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
