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
import re
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
from test_workspace import default_pipeline_extracts, fake_definition_values, iter_states, terraform_function_arns

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
    assert len(lambda_tasks) == 2 * len(extracts) + 1

    # Accepted by moto's validation, and executed end to end.
    sfn.create_state_machine(name=f"other-{case}-as-rendered", definition=json.dumps(definition), roleArn=ROLE_ARN)
    arn = sfn.create_state_machine(name=f"other-{case}", definition=json.dumps(with_dbt_stand_in(definition)),
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


def test_no_input_and_scheduled_input_let_the_function_derive_the_window(sfn, state_machine, fake):
    happy(fake)
    desc, execution = run(sfn, state_machine, {})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(p["source"] for p in fake.calls_of("api-extract")) == ["sessions", "users"]
    assert all(set(p) == {"source"} for p in fake.calls_of("api-extract"))

    fake.reset()
    happy(fake)
    desc, execution = run(sfn, state_machine, {"scheduled_time": "2020-02-01T01:30:00Z"})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    assert sorted(fake.calls_of("api-extract"), key=lambda p: p["source"]) == [
        {"scheduled_time": "2020-02-01T01:30:00Z", "source": "sessions"},
        {"scheduled_time": "2020-02-01T01:30:00Z", "source": "users"},
    ]
    # songs is not windowed: it gets its source only, whatever the window.
    assert fake.calls_of("songs-extract") == [{"source": "songs"}]


def test_backfill_runs_the_windows_in_order_then_serving_once(sfn, state_machine, fake):
    happy(fake)
    windows = [
        {"start_date": "2020-01-01", "end_date": "2020-01-31"},
        {"start_date": "2020-02-01", "end_date": "2020-02-29"},
        {"start_date": "2020-03-01", "end_date": "2020-03-31"},
    ]
    desc, execution = run(sfn, state_machine, {"windows": windows})
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    users = [p["start_date"] for p in fake.calls_of("api-extract") if p["source"] == "users"]
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
    api = sorted(fake.calls_of("api-extract"), key=lambda p: p["source"])
    assert api == [{"source": "sessions"}, {"source": "users"}]
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
    users = [p for p in fake.calls_of("api-extract") if p["source"] == "users"]
    assert users == [
        {"start_date": "2020-01-01", "end_date": "2020-01-31", "source": "users"},
        {"start_date": "2020-02-01", "end_date": "2020-02-29", "source": "users"},
    ]
    assert all("Comment" not in json.dumps(p) and "note" not in p for _, p in fake.calls)

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


# ------------------------------------------------------------------ files-only pipelines (sparkify)
def files_only_values() -> dict:
    """What modules/pipeline passes for a pipeline without extracts: no extract function."""
    values = fake_definition_values(FUNCTION_ARNS)
    values["function_arns"] = {c: a for c, a in values["function_arns"].items() if c in ("transform", "redshift-setup")}
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
    assert set(definition["States"]) == {"Files only", "Set up Redshift", "Run dbt build", "Pipeline succeeded", "Pipeline failed"}
    assert definition["States"]["Files only"] == {
        "Type": "Pass", "Comment": definition["States"]["Files only"]["Comment"], "Parameters": {"input.$": "$"},
        "Next": "Set up Redshift"}
    assert "no window" in definition["Comment"].lower()
    # Serving is the same as a pipeline with extracts.
    for name in ("Set up Redshift", "Run dbt build", "Pipeline failed"):
        assert definition["States"][name] == rendered["States"][name], name
    assert not re.search(r"api-extract|songs-extract", json.dumps(definition))


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
    assert entered_states(sfn, execution) == ["Files only", "Set up Redshift", "Run dbt build", "Pipeline succeeded"]


def test_files_only_failures_keep_the_error(sfn, files_only, fake):
    _, arn = files_only
    happy(fake)
    fake.behaviour["redshift-setup"] = lambda p: ("error", "WarehouseRejected", "permission denied for schema sparkify_serving")
    desc, execution = run(sfn, arn, {})
    assert desc["status"] == "FAILED", explain(sfn, execution)
    assert desc["error"] == "WarehouseRejected" and "sparkify_serving" in desc["cause"]
    assert fake.calls_of("dbt-stand-in") == []

    fake.reset()
    happy(fake)
    fake.behaviour["dbt-stand-in"] = lambda p: ("error", "DbtTaskFailed", json.dumps({"StopCode": "EssentialContainerExited"}))
    desc, execution = run(sfn, arn, {})
    assert desc["status"] == "FAILED" and desc["error"] == "DbtTaskFailed", explain(sfn, execution)
    assert "Pipeline failed" in entered_states(sfn, execution)


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
