"""Several pipelines in one deployment (var.pipelines): what each pipeline gets, what keeps them
apart, and the move of a single-pipeline state. modules/pipeline_settings is evaluated by
Terraform itself (it needs no provider); the wiring of its values into modules/pipeline is
checked statically, like the rest of terraform/tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

import tfparse as tp

TWO = {"deftunes": {}, "sparkify": {}}
PROJECT = tp.variable_default(tp.TF_DIR, "project")


@pytest.fixture(scope="module")
def two():
    return tp.plan_settings(TWO)


def pipeline_modules() -> dict[str, dict]:
    return tp.blocks(tp.PIPELINE_DIR, "module")


# ------------------------------------------------------------------ each pipeline's own
def test_default_configuration_plans_the_deftunes_pipeline_with_todays_names():
    (key,) = [tp.unquote(k) for k in tp.variable_default(tp.TF_DIR, "pipelines")]
    planned = tp.plan_settings({key: {}})
    s = planned[key]
    assert s["name"] == PROJECT and s["primary"] is True
    assert s["glue_database_name"] == "deftunes_transform" == tp.deploy_json(key)["namespace"]
    assert (s["external_schema"], s["serving_schema"], s["bi_schema"]) == (
        tp.variable_default(tp.TF_DIR, "external_schema"), tp.variable_default(tp.TF_DIR, "serving_schema"),
        tp.variable_default(tp.TF_DIR, "bi_schema"))
    assert s["extract_functions"] == ["api-extract", "songs-extract"]
    names = {tp.crate_of_module(b): tp.function_name_of(b, s["name"]) for n, b in tp.lambda_modules().items() if n != "api_emulator"}
    assert names == {"api-extract": "deftunes-api-extract", "songs-extract": "deftunes-songs-extract",
                     "transform": "deftunes-transform", "redshift-setup": "deftunes-redshift-setup",
                     "run-control": "deftunes-run-control"}


def test_two_pipelines_get_their_own_spec_namespace_schemas_and_names(two):
    assert set(two) == {"deftunes", "sparkify"}
    d, s = two["deftunes"], two["sparkify"]
    assert (d["name"], s["name"]) == ("deftunes", "deftunes-sparkify")
    assert (d["pipeline"], s["pipeline"]) == ("deftunes", "sparkify")
    # Glue database: each spec's namespace.
    assert (d["glue_database_name"], s["glue_database_name"]) == ("deftunes_transform", "sparkify")
    assert (s["external_schema"], s["serving_schema"], s["bi_schema"]) == ("sparkify_transform", "sparkify_serving", "sparkify_bi")
    assert d["external_schema"] == "deftunes_transform"
    schemas = [x[k] for x in (d, s) for k in ("external_schema", "serving_schema", "bi_schema")]
    assert len(set(schemas)) == 6
    # Files only: sparkify deploys no extract function.
    assert s["extracts"] == [] and s["extract_functions"] == []
    assert s["tables"] == tp.deploy_json("sparkify")["tables"]
    # Function names are distinct across the pipelines.
    fn_names = [tp.function_name_of(b, x["name"]) for x in (d, s) for n, b in tp.lambda_modules().items() if n != "api_emulator"]
    assert len(set(fn_names)) == len(fn_names)
    assert "deftunes-sparkify-transform" in fn_names


def test_functions_get_their_pipeline_and_its_namespace():
    modules = pipeline_modules()
    for name in ("api_extract", "songs_extract", "transform"):
        assert modules[name]["environment"]["PIPELINE"] == "${var.settings.pipeline}", name
        assert tp.unquote(modules[name]["function_name"]).startswith("${var.settings.name}-"), name
    assert modules["transform"]["environment"]["ICEBERG_NAMESPACE"] == "${module.catalog.database_name}"
    assert modules["redshift_setup"]["environment"]["GLUE_DATABASE"] == "${module.catalog.database_name}"
    assert modules["catalog"]["database_name"] == "${var.settings.glue_database_name}"
    assert modules["catalog"]["optimized_tables"] == "${var.settings.tables}"
    for env, name in [("EXTERNAL_SCHEMA", "external_schema"), ("SERVING_SCHEMA", "serving_schema"), ("BI_SCHEMA", "bi_schema")]:
        assert modules["redshift_setup"]["environment"][env] == f"${{var.settings.{name}}}"
    # Every pipeline instance is named after its settings.
    for name in ("orchestration", "dbt_task"):
        assert modules[name]["name"] == "${var.settings.name}", name


def event_pattern(landing_prefixes: list[str], bucket: str = "deftunes-lake") -> dict:
    """The landing rule's event_pattern of modules/orchestration/queue.tf, evaluated by Terraform."""
    rule = tp.resources(tp.MODULES_DIR / "orchestration", "aws_cloudwatch_event_rule")["landing_object_created"]
    expr = rule["event_pattern"]
    assert expr.startswith("${") and expr.endswith("}"), expr
    return json.loads(tp.console_eval(expr[2:-1], {"landing_prefixes": landing_prefixes, "bucket_name": bucket}))


def matches(pattern: dict, key: str, bucket: str = "deftunes-lake") -> bool:
    detail = pattern["detail"]
    return (pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
            and bucket in detail["bucket"]["name"]
            and any(key.startswith(p["prefix"]) for p in detail["object"]["key"]))


def test_each_rule_matches_exactly_its_pipelines_landing_prefixes(two):
    assert pipeline_modules()["orchestration"]["landing_prefixes"] == "${var.settings.landing_prefixes}"
    patterns = {k: event_pattern(s["landing_prefixes"]) for k, s in two.items()}
    for k, pattern in patterns.items():
        prefixes = [p["prefix"] for p in pattern["detail"]["object"]["key"]]
        assert prefixes == tp.deploy_json(k)["landing_prefixes"], k
    # An object lands in one pipeline's queue: its own.
    for k in two:
        for prefix in tp.deploy_json(k)["landing_prefixes"]:
            key = f"{prefix}ingest_on=2020-01-01/part-00000.jsonl"
            assert {p for p, pattern in patterns.items() if matches(pattern, key)} == {k}, key
    # Neither the landing zone's other folders nor other buckets.
    assert not any(matches(p, "landing_zone/other/x.jsonl") for p in patterns.values())
    assert not matches(patterns["sparkify"], "landing_zone/log_data/x.json", bucket="other-bucket")


def test_landing_prefixes_follow_the_lake_prefix():
    planned = tp.plan_settings(TWO, lake_key_prefix="lake/")
    assert planned["sparkify"]["landing_prefixes"] == [f"lake/{p}" for p in tp.deploy_json("sparkify")["landing_prefixes"]]
    assert tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["lake_key_prefix"] == "${module.data_lake.key_prefix}"
    # The windows' map results too: one folder per pipeline, outside the zones (no trailing "/").
    assert planned["deftunes"]["map_results_prefix"] == "lake/reports/map-results/deftunes"
    assert planned["sparkify"]["map_results_prefix"] == "lake/reports/map-results/sparkify"


def test_backfill_concurrency_reaches_each_pipelines_state_machine():
    """The top-level backfill_max_concurrency is every pipeline's default; a pipeline's own value
    overrides it; modules/pipeline hands it, with the map results prefix and the lake's KMS key,
    to the orchestration, whose template renders it as the Map's MaxConcurrency."""
    assert tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["defaults"]["backfill_max_concurrency"] == "${var.backfill_max_concurrency}"
    planned = tp.plan_settings({"deftunes": {"backfill_max_concurrency": 1}, "sparkify": {}}, backfill_max_concurrency=25)
    assert (planned["deftunes"]["backfill_max_concurrency"], planned["sparkify"]["backfill_max_concurrency"]) == (1, 25)
    call = pipeline_modules()["orchestration"]
    assert call["backfill_max_concurrency"] == "${var.settings.backfill_max_concurrency}"
    assert call["map_results_prefix"] == "${var.settings.map_results_prefix}"
    assert call["kms_key_arn"] == "${var.lake_kms_key_arn}"
    assert tp.definition_vars()["backfill_max_concurrency"] == "${var.backfill_max_concurrency}"
    settings_type = tp.blocks(tp.PIPELINE_DIR, "variable")["settings"]["type"]
    assert "backfill_max_concurrency" in settings_type and "map_results_prefix" in settings_type


def test_extract_functions_may_write_only_their_sources_landing_folders():
    planned = tp.plan_settings(TWO, lake_key_prefix="lake/")
    for k, s in planned.items():
        for function in ("api-extract", "songs-extract"):
            want = [f"lake/{e['landing_prefix']}" for e in tp.deploy_json(k)["extracts"] if e["function"] == function]
            assert s["extract_landing"][function] == want, (k, function)
    assert planned["deftunes"]["extract_landing"]["songs-extract"] == ["lake/landing_zone/rds/songs/"]
    assert planned["sparkify"]["extract_landing"] == {"api-extract": [], "songs-extract": []}
    statements = tp.locals_of(tp.PIPELINE_DIR)["function_statements"]
    for function in ("api-extract", "songs-extract"):
        writes = [st for st in statements[f'"{function}"'] if any("PutObject" in a for a in st["actions"])]
        landing = [st for st in writes if f'var.settings.extract_landing["{function}"]' in str(st["resources"])]
        state = [st for st in writes if st not in landing]
        assert landing, function
        # Beside the landing folders, songs-extract writes only its pipeline's watermarks.
        if function == "songs-extract":
            assert len(state) == 1 and "var.settings.state_prefix" in str(state[0]["resources"])
            assert "s3:DeleteObject" not in str(state[0]["actions"])
        else:
            assert not state, function
    assert planned["deftunes"]["state_prefix"] == "lake/state/deftunes/"
    assert planned["sparkify"]["state_prefix"] == "lake/state/sparkify/"
    read = [st for st in statements['"transform"'] if any("GetObjectVersion" in a for a in st["actions"])]
    assert len(read) == 1 and "var.settings.landing_prefixes" in str(read[0]["resources"])


def test_sparkify_dbt_task_runs_its_project(two):
    for k, s in two.items():
        project_dir = tp.deploy_json(k)["dbt_project_dir"]
        assert (tp.REPO_ROOT / project_dir / "dbt_project.yml").exists(), project_dir
        assert s["dbt_command"] == ["build", "--target", "redshift", "--project-dir", f"/dbt/{project_dir}",
                                    "--profiles-dir", f"/dbt/{project_dir}"], k
    assert two["sparkify"]["dbt_command"][4] == "/dbt/pipelines/sparkify/dbt"
    assert pipeline_modules()["dbt_task"]["dbt_command"] == "${var.settings.dbt_command}"
    task = tp.resources(tp.MODULES_DIR / "dbt_task", "aws_ecs_task_definition")["dbt"]
    assert "command = var.dbt_command," in task["container_definitions"]
    assert tp.unquote(task["family"]) == "${var.name}-dbt"


def test_overrides_and_top_level_defaults():
    planned = tp.plan_settings({
        "deftunes": {"api_base_url": "https://other.example.com", "schedule_enabled": True},
        "sparkify": {"glue_database_name": "sparkify_silver", "serving_schema": "sparkify_star", "name_prefix": "spk"},
    }, schedule_expression="cron(0 3 * * ? *)")
    assert planned["deftunes"]["api_base_url"] == "https://other.example.com"
    assert planned["deftunes"]["schedule_enabled"] is True and planned["sparkify"]["schedule_enabled"] is False
    assert planned["sparkify"]["schedule_expression"] == "cron(0 3 * * ? *)"
    assert planned["sparkify"]["glue_database_name"] == "sparkify_silver"
    assert planned["sparkify"]["serving_schema"] == "sparkify_star" and planned["sparkify"]["bi_schema"] == "sparkify_bi"
    assert planned["sparkify"]["name"] == "spk"
    # Another project: no pipeline keeps the single-pipeline names, each is <project>-<key>.
    other = tp.plan_settings(TWO, project="acme")
    assert (other["deftunes"]["name"], other["sparkify"]["name"]) == ("acme-deftunes", "acme-sparkify")
    assert other["deftunes"]["external_schema"] == "deftunes_transform"


def test_root_and_settings_module_declare_the_same_pipelines_type():
    root = tp.blocks(tp.TF_DIR, "variable")["pipelines"]
    module = tp.blocks(tp.MODULES_DIR / "pipeline_settings", "variable")["pipelines"]
    assert root["type"] == module["type"]
    # The module checks the keys and each pipeline's backfill_max_concurrency as the root does; the
    # root alone checks pg_sslmode and mysql_sslmode (their values are the functions' business).
    root_conditions = [v["condition"] for v in root["validation"]]
    assert [v["condition"] for v in module["validation"]] == [c for c in root_conditions if "sslmode" not in c]
    assert any("backfill_max_concurrency" in c for c in root_conditions)
    assert any("p.pg_sslmode" in c for c in root_conditions) and any("p.mysql_sslmode" in c for c in root_conditions)


# ------------------------------------------------------------------ what keeps pipelines apart
@pytest.mark.parametrize("pipelines,message", [
    ({"deftunes": {}, "sparkify": {"glue_database_name": "deftunes_transform"}}, "share a Glue database"),
    ({"deftunes": {}, "sparkify": {"serving_schema": "deftunes_serving"}}, "Redshift schemas would be the same"),
    ({"deftunes": {}, "sparkify": {"name_prefix": "deftunes"}}, "share a resource name prefix"),
    ({"deftunes": {}, "nosuch": {}}, "No readable pipelines/<name>/deploy.json for pipeline(s) nosuch"),
    ({"deftunes": {}, "sparkify": {"bi_schema": "Sparkify-BI"}}, "lower-case identifiers"),
    ({"Deftunes": {}}, "folder name under pipelines/"),
    ({"deftunes": {"backfill_max_concurrency": 0}}, "backfill_max_concurrency must be an integer from 1 to 10000"),
    ({"deftunes": {}, "sparkify": {"backfill_max_concurrency": 1.5}}, "backfill_max_concurrency must be an integer from 1 to 10000"),
    ({"deftunes": {"catch_up_max_windows": 0}}, "catch_up_max_windows must be an integer from 1 to 2000"),
    ({"deftunes": {}, "sparkify": {"catch_up_max_windows": 2001}}, "catch_up_max_windows must be an integer from 1 to 2000"),
], ids=["glue-database", "schema", "name-prefix", "no-deploy-json", "schema-name", "key", "concurrency-0", "concurrency-fraction",
        "catch-up-0", "catch-up-too-many"])
def test_refused_configurations(pipelines, message):
    with pytest.raises(RuntimeError, match=re.escape(message)):
        tp.plan_settings(pipelines)


@pytest.fixture
def overlapping_pipeline():
    """A pipelines/<name>/deploy.json whose landing prefix contains deftunes' users folder."""
    name = "tf-test-overlap"
    folder = tp.REPO_ROOT / "pipelines" / name
    assert not folder.exists(), folder
    folder.mkdir()
    try:
        (folder / "deploy.json").write_text(json.dumps({
            "name": name, "namespace": "overlap", "landing_prefixes": ["landing_zone/api/"], "extracts": [],
            "tables": ["t"], "dbt_project": "dbt", "dbt_project_dir": f"pipelines/{name}/dbt",
        }))
        yield name
    finally:
        shutil.rmtree(folder)


def test_overlapping_landing_prefixes_are_refused(overlapping_pipeline):
    with pytest.raises(RuntimeError, match=r"Landing prefixes of two pipelines overlap") as err:
        tp.plan_settings({"deftunes": {}, overlapping_pipeline: {}})
    assert "landing_zone/api/users/" in str(err.value) and "landing_zone/api/" in str(err.value)
    # Alone, it is fine.
    assert tp.plan_settings({overlapping_pipeline: {}})[overlapping_pipeline]["landing_prefixes"] == ["landing_zone/api/"]


def test_every_pair_of_deployable_pipelines_is_disjoint():
    folders = sorted(p.parent.name for p in (tp.REPO_ROOT / "pipelines").glob("*/deploy.json"))
    # A pipeline with an OAuth REST source (spotify) needs its own API and client settings.
    oauth = {"api_base_url": "https://api.example.com/", "oauth_token_url": "https://auth.example.com/token",
             "oauth_client_id": "client", "oauth_client_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:c-AbCdEf"}
    planned = tp.plan_settings({f: oauth if any(e.get("auth") for e in tp.deploy_json(f)["extracts"]) else {} for f in folders})
    assert set(planned) == set(folders)


def test_sources_a_pipeline_uses_must_be_configured():
    with pytest.raises(RuntimeError, match=r"Pipeline\(s\) deftunes extract from a REST API: set api_base_url"):
        tp.plan_settings({"deftunes": {}}, api_base_url=None)
    with pytest.raises(RuntimeError, match=r"Pipeline\(s\) deftunes extract from PostgreSQL: set pg_host and pg_secret_arn"):
        tp.plan_settings({"deftunes": {}}, pg_host=None)
    # A files-only pipeline needs neither.
    assert tp.plan_settings({"sparkify": {}}, api_base_url=None, pg_host=None, pg_secret_arn=None)["sparkify"]["extracts"] == []
    # Per-pipeline values fill in what the defaults lack.
    planned = tp.plan_settings({"deftunes": {"api_base_url": "https://x.example.com/", "pg_host": "db"}}, api_base_url=None, pg_host=None)
    assert planned["deftunes"]["pg_host"] == "db"


# ------------------------------------------------------------------ shared parts
def test_shared_spectrum_role_reads_every_pipelines_glue_database():
    serving = tp.blocks(tp.TF_DIR, "module")["serving"]
    assert serving["glue_databases"] == "${[for k in sort(keys(var.pipelines)) : local.pipelines[k].glue_database_name]}"
    code = (tp.MODULES_DIR / "serving" / "iam.tf").read_text()
    assert '[for db in var.glue_databases : "${local.glue_arn_prefix}:database/${db}"]' in code
    assert '[for db in var.glue_databases : "${local.glue_arn_prefix}:table/${db}/*"]' in code
    # Shared resources stay named after the project.
    assert serving["name"] == "${var.project}"
    assert not tp.resources(tp.MODULES_DIR / "serving", "aws_ecs_task_definition")


# ------------------------------------------------------------------ moving a single-pipeline state
OLD_ROOT_MODULES = {"catalog", "api_extract", "songs_extract", "transform", "redshift_setup", "orchestration"}
OLD_SERVING_DBT = {"aws_cloudwatch_log_group.dbt", "aws_ecs_task_definition.dbt", "aws_iam_role.dbt_execution",
                   "aws_iam_role_policy.dbt_execution", "aws_iam_role.dbt_task"}


def moved_blocks() -> dict[str, str]:
    out = {}
    for parsed in tp.parse_dir(tp.TF_DIR).values():
        for block in parsed.get("moved", []):
            out[block["from"].strip("${}")] = block["to"].strip("${}")
    return out


def test_moved_blocks_take_the_single_pipeline_state_into_module_pipeline_deftunes():
    moved = moved_blocks()
    expected_from = {f"module.{m}" for m in OLD_ROOT_MODULES} | {f"module.serving.{r}" for r in OLD_SERVING_DBT}
    assert set(moved) == expected_from
    target = 'module.pipeline["deftunes"]'
    pipeline_modules_ = pipeline_modules()
    for src, dst in moved.items():
        assert dst.startswith(target + ".module."), dst
        rest = dst[len(target) + len(".module."):]
        module, _, resource = rest.partition(".")
        index = re.fullmatch(r"([a-z_]+)(\[0\])?", module)
        assert index and index.group(1) in pipeline_modules_, dst
        body = pipeline_modules_[index.group(1)]
        # A counted module is addressed by [0], a single one without an index.
        assert bool(index.group(2)) == ("count" in body), dst
        if src.startswith("module.serving."):
            rtype, rname = resource.split(".")
            assert rname in tp.resources(tp.MODULES_DIR / "dbt_task", rtype), dst
        else:
            assert src == f"module.{index.group(1)}" and resource == "", (src, dst)
    # The moved-to pipeline keeps today's names: its key is the project's default and the
    # default of var.pipelines.
    assert PROJECT == "deftunes" and [tp.unquote(k) for k in tp.variable_default(tp.TF_DIR, "pipelines")] == ["deftunes"]
    assert tp.plan_settings({"deftunes": {}})["deftunes"]["name"] == PROJECT


# ------------------------------------------------------------------ one dbt image, every project
def dockerignore_allows(path: str) -> bool:
    """Docker's .dockerignore rules (last match wins, ! re-includes) for a file path."""
    allowed = True
    for line in (tp.REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = path.split("/")
        hit = any(fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch("/".join(parts[i:j]), pattern[3:]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
        if hit:
            allowed = negate
    return allowed


def test_dbt_image_holds_every_pipelines_project_in_its_repository_layout():
    dockerfile = (tp.REPO_ROOT / "dbt_modeling" / "Dockerfile").read_text()
    copies = re.findall(r"(?m)^COPY (\S+) (\S+)$", dockerfile)
    assert copies == [("dbt_modeling/", "/dbt/dbt_modeling/"), ("pipelines/", "/dbt/pipelines/")], copies
    assert "docker build -f dbt_modeling/Dockerfile" in dockerfile
    assert not (tp.REPO_ROOT / "dbt_modeling" / ".dockerignore").exists(), "the build context is the repository root"
    # Everything else stays out of the context.
    for outside in ("target/lambda/transform/bootstrap.zip", ".git/HEAD", "shared/src/lib.rs", "pipelines/deftunes/pipeline.toml",
                    "dbt_modeling/target/manifest.json", "pipelines/sparkify/dbt/target/x.json", "dbt_modeling/logs/dbt.log"):
        assert not dockerignore_allows(outside), outside
    for folder in sorted(p.parent.name for p in (tp.REPO_ROOT / "pipelines").glob("*/deploy.json")):
        project_dir = tp.deploy_json(folder)["dbt_project_dir"]
        project = tp.REPO_ROOT / project_dir
        for f in ("dbt_project.yml", "profiles.yml"):
            assert dockerignore_allows(f"{project_dir}/{f}"), f"{project_dir}/{f} is left out of the dbt image"
        assert any(project_dir == src.rstrip("/") or project_dir.startswith(src) for src, _ in copies), project_dir
        # Its relative macro paths resolve to folders the image holds, as in the repository.
        config = (project / "dbt_project.yml").read_text()
        m = re.search(r"(?m)^macro-paths:\s*\[(.*)\]", config)
        for rel in ([p.strip().strip("\"'") for p in m.group(1).split(",")] if m else []):
            target = os.path.normpath(f"/dbt/{project_dir}/{rel}")
            repo_rel = os.path.relpath(target, "/dbt")
            assert not repo_rel.startswith(".."), (project_dir, rel)
            assert (tp.REPO_ROOT / repo_rel).is_dir() and dockerignore_allows(f"{repo_rel}/x.sql"), (project_dir, rel)
        # A redshift target, like dbt_modeling's.
        assert re.search(r"(?m)^\s+redshift:\s*$", (project / "profiles.yml").read_text()), project_dir


# ------------------------------------------------------------------ terraform validate
PLUGIN_DIR = tp.PLUGIN_DIR


@pytest.mark.skipif(not tp.local_aws_provider_versions(),
                    reason=f"no local AWS provider under {PLUGIN_DIR} (terraform init cannot download one offline)")
def test_terraform_validate_with_a_local_provider(tmp_path):
    """`terraform validate` of a copy of terraform/ with the AWS provider found locally (an older
    major is handled by tp.copy_for_local_provider)."""
    copy = tp.copy_for_local_provider(tmp_path)
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null")
    init = subprocess.run([tp.terraform_exe(), "init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"],
                          cwd=copy, capture_output=True, text=True, timeout=300, env=env)
    assert init.returncode == 0, init.stderr + init.stdout
    validate = subprocess.run([tp.terraform_exe(), "validate", "-no-color", "-json"], cwd=copy, capture_output=True, text=True,
                              timeout=300, env=env)
    result = json.loads(validate.stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=1)
