"""REST sources with OAuth 2.0 client credentials, and the pipelines' own REST APIs.

deploy.json's REST extracts (function api-extract) may carry "auth": "oauth2_client_credentials"
(spotify: four catalogue listings, not windowed). A pipeline with such an extract gets its own
api_base_url (never the top-level DeFtunes API or the demo source: its bearer token goes there),
OAUTH_TOKEN_URL, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET_ARN (and OAUTH_SCOPE when set) on its
api-extract, and secretsmanager:GetSecretValue on that secret only (kms:Decrypt on
oauth_secret_kms_key_arn when set); any other pipeline gets no OAUTH_* and no such statement. The
plan fails, naming the pipeline, when a setting is missing or a URL is not https.

Non-windowed REST extracts are called with {"source": <name>} only, whatever the run's input (the
state machine rendered with spotify's extracts and executed in moto). spotify's Athena queries
(top artists, artist popularity history) are rendered with its Glue database, checked against the
spec's columns and executed on sample versions in SQLite.

modules/pipeline_settings is evaluated by Terraform itself; then the root is planned with the local
AWS provider for { deftunes = {}, spotify = {...} }."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tomllib

import pytest

import tfparse as tp
from test_state_machine import (FUNCTION_ARNS, LANDING_PREFIXES, PIPELINE_FUNCTIONS, ROLE_ARN, as_inline,  # noqa: F401
                                assert_branches_are, executable, explain, fake, fake_aws, happy, moto, run, sfn)
from test_workspace import fake_definition_values

ACCOUNT, REGION = tp.PLAN_ACCOUNT, tp.PLAN_REGION
OAUTH_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:spotify-client-AbCdEf"
OAUTH_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-00000000000c"
TOKEN_URL = "https://accounts.spotify.example.com/api/token"
SPOTIFY_API = "https://api.spotify.example.com/"
SPOTIFY = {"api_base_url": SPOTIFY_API, "oauth_token_url": TOKEN_URL, "oauth_client_id": "deftunes-catalogue",
           "oauth_client_secret_arn": OAUTH_SECRET}
TWO = {"deftunes": {}, "spotify": SPOTIFY}

OAUTH_ENV = {"OAUTH_TOKEN_URL", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET_ARN", "OAUTH_SCOPE"}
OAUTH_SETTINGS = ("oauth_token_url", "oauth_client_id", "oauth_client_secret_arn", "oauth_scope", "oauth_secret_kms_key_arn")
SPOTIFY_SOURCES = {"albums", "artists", "playlists", "tracks"}
SPOTIFY_QUERIES = {"top-artists", "artist-popularity-history"}
VERSION_ORDER = "ingest_on DESC, processing_timestamp DESC, source_object DESC"
# Columns transform adds to every table after the spec's (shared/src/transform/tables.rs).
ADDED_COLUMNS = ["record_hash", "ingest_on", "processing_timestamp", "source_from", "source_object"]


@pytest.fixture(scope="module")
def two():
    return tp.plan_settings(TWO)


def spec(pipeline: str) -> dict:
    return tomllib.loads((tp.REPO_ROOT / "pipelines" / pipeline / "pipeline.toml").read_text())


def table_columns(pipeline: str, table: str) -> list[str]:
    return [c["name"] for c in spec(pipeline)["tables"][table]["columns"]] + ADDED_COLUMNS


@pytest.fixture
def scratch_pipeline():
    """pipelines/tf-test-rest/ with the REST extracts a test writes; removed after."""
    folder = tp.REPO_ROOT / "pipelines" / "tf-test-rest"
    assert not folder.exists(), folder
    folder.mkdir()

    def write(extracts: list[dict]) -> str:
        (folder / "deploy.json").write_text(json.dumps({
            "name": folder.name, "namespace": "tf_test_rest", "landing_prefixes": ["landing_zone/tfrest/a/"],
            "extracts": extracts, "tables": ["a"], "dbt_project": "dbt", "dbt_project_dir": f"pipelines/{folder.name}/dbt",
        }))
        return folder.name

    try:
        yield write
    finally:
        shutil.rmtree(folder)


def rest_extract(**extra) -> dict:
    return {"source": "a", "function": "api-extract", "windowed": False, "landing_prefix": "landing_zone/tfrest/a/", **extra}


# ------------------------------------------------------------------ settings of each pipeline
def test_deploy_json_names_the_auth_of_each_rest_extract():
    extracts = tp.deploy_json("spotify")["extracts"]
    assert {e["source"] for e in extracts} == SPOTIFY_SOURCES
    assert {(e["function"], e["windowed"], e.get("auth")) for e in extracts} == {("api-extract", False, "oauth2_client_credentials")}
    rest = [e for e in tp.deploy_json("deftunes")["extracts"] if e["function"] == "api-extract"]
    assert rest and not [e for e in rest if "auth" in e]


def test_each_pipeline_gets_the_auth_of_its_rest_sources(two):
    d, s = two["deftunes"], two["spotify"]
    assert (d["rest_auths"], s["rest_auths"]) == ([], ["oauth2_client_credentials"])
    assert s["extract_functions"] == ["api-extract"] and s["sql_engines"] == []
    # spotify's own API and client, the DeFtunes API for deftunes.
    assert (s["api_base_url"], s["oauth_token_url"], s["oauth_client_id"], s["oauth_client_secret_arn"]) == (
        SPOTIFY_API, TOKEN_URL, "deftunes-catalogue", OAUTH_SECRET)
    assert (s["oauth_scope"], s["oauth_secret_kms_key_arn"], s["api_retry_after_max_secs"]) == (None, None, None)
    assert d["api_base_url"] == tp.settings_defaults()["api_base_url"]
    assert all(d[name] is None for name in OAUTH_SETTINGS)
    # Files only and SQL only: no REST auth either.
    both = tp.plan_settings({"sparkify": {}, "classicmodels": {}})
    assert both["sparkify"]["rest_auths"] == both["classicmodels"]["rest_auths"] == []


def test_top_level_oauth_settings_are_every_pipelines_defaults():
    for name in (*OAUTH_SETTINGS, "api_retry_after_max_secs"):
        assert tp.variable_default(tp.TF_DIR, name) is None, name
    # The root passes every top-level setting as the default of every pipeline.
    defaults = tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["defaults"]
    for name in (*OAUTH_SETTINGS, "api_retry_after_max_secs"):
        assert defaults[name] == f"${{var.{name}}}", name
    top = {"oauth_token_url": "https://auth.example.com/token", "oauth_client_id": "top", "oauth_client_secret_arn": OAUTH_SECRET,
           "oauth_scope": "catalogue:read", "oauth_secret_kms_key_arn": OAUTH_KEY, "api_retry_after_max_secs": 300}
    planned = tp.plan_settings({"deftunes": {}, "spotify": {"api_base_url": SPOTIFY_API}}, **top)["spotify"]
    assert {k: planned[k] for k in top} == top
    # A pipeline's own values win.
    own = dict(SPOTIFY, oauth_scope="playlists", api_retry_after_max_secs=0)
    planned = tp.plan_settings({"spotify": own}, **top)["spotify"]
    assert (planned["oauth_token_url"], planned["oauth_client_id"], planned["oauth_scope"], planned["api_retry_after_max_secs"]) == (
        TOKEN_URL, "deftunes-catalogue", "playlists", 0)
    assert planned["oauth_secret_kms_key_arn"] == OAUTH_KEY


def test_an_oauth_pipeline_takes_only_its_own_api_base_url():
    """The top-level api_base_url is the DeFtunes API (or the demo source): spotify's bearer token
    must not go there, so spotify needs its own; deftunes keeps the top-level one."""
    without = {k: v for k, v in SPOTIFY.items() if k != "api_base_url"}
    with pytest.raises(RuntimeError, match=re.escape("Pipeline(s) spotify extract from a REST API with OAuth 2.0: set the pipeline's own api_base_url")):
        tp.plan_settings({"deftunes": {}, "spotify": without})
    # Not the generic message: a top-level api_base_url is set, it just is not spotify's.
    with pytest.raises(RuntimeError) as err:
        tp.plan_settings({"spotify": without})
    assert "extract from a REST API: set api_base_url" not in str(err.value)
    # deftunes still takes the top-level one; without any, its own message.
    with pytest.raises(RuntimeError, match=re.escape("Pipeline(s) deftunes extract from a REST API: set api_base_url")):
        tp.plan_settings(TWO, api_base_url=None)


MISSING = {
    "token-url": ["oauth_token_url"],
    "client-id": ["oauth_client_id"],
    "secret": ["oauth_client_secret_arn"],
    "all": ["oauth_token_url", "oauth_client_id", "oauth_client_secret_arn"],
}


@pytest.mark.parametrize("case", list(MISSING))
def test_a_pipeline_with_an_oauth_source_needs_its_client_settings(case):
    spotify = {k: v for k, v in SPOTIFY.items() if k not in MISSING[case]}
    with pytest.raises(RuntimeError) as err:
        tp.plan_settings({"deftunes": {}, "spotify": spotify})
    message = str(err.value)
    assert ("Pipeline(s) spotify extract from a REST API with OAuth 2.0 client credentials: set oauth_token_url, "
            "oauth_client_id and oauth_client_secret_arn (top-level or the pipeline's)") in message
    assert f"Missing: {', '.join(f'spotify: {n}' for n in MISSING[case])}." in message
    assert "deftunes" not in message.split("Missing:")[0].split("Pipeline(s)")[-1]
    # The top-level values fill in what the pipeline lacks; an empty string is missing too.
    top = {"oauth_token_url": TOKEN_URL, "oauth_client_id": "top", "oauth_client_secret_arn": OAUTH_SECRET}
    assert tp.plan_settings({"deftunes": {}, "spotify": spotify}, **top)["spotify"]["rest_auths"] == ["oauth2_client_credentials"]
    with pytest.raises(RuntimeError, match=re.escape("Missing: spotify: oauth_client_id.")):
        tp.plan_settings({"spotify": dict(SPOTIFY, oauth_client_id="")})


def test_oauth_settings_are_needed_only_by_pipelines_with_an_oauth_source():
    # No top-level OAuth settings: deftunes, classicmodels and sparkify plan without them.
    planned = tp.plan_settings({"deftunes": {}, "classicmodels": {}, "sparkify": {}})
    assert all(p["rest_auths"] == [] for p in planned.values())


def test_oauth_urls_must_be_https():
    """The client secret goes to the token URL and the bearer token to the API: https only. A
    pipeline's own token URL is refused by the variable's validation (root and module); the
    resolved settings are checked too, so a top-level value is refused whatever reached the module."""
    insecure = "OAuth 2.0 URLs must be https:// (the client secret goes to the token URL, the bearer token to the API): "
    with pytest.raises(RuntimeError, match=re.escape(insecure + "spotify: api_base_url.")):
        tp.plan_settings({"spotify": dict(SPOTIFY, api_base_url="http://api.spotify.example.com/")})
    with pytest.raises(RuntimeError, match=re.escape("A pipeline's oauth_token_url must be an https:// URL")):
        tp.plan_settings({"spotify": dict(SPOTIFY, oauth_token_url="http://accounts.example.com/api/token")})
    spotify = {k: v for k, v in SPOTIFY.items() if k != "oauth_token_url"}
    with pytest.raises(RuntimeError, match=re.escape(insecure + "spotify: oauth_token_url.")):
        tp.plan_settings({"spotify": spotify}, oauth_token_url="http://accounts.example.com/api/token")
    # A pipeline without OAuth may keep an http API (no token goes there).
    assert tp.plan_settings({"deftunes": {"api_base_url": "http://10.0.0.5:8080/"}})["deftunes"]["api_base_url"] == "http://10.0.0.5:8080/"


def test_unknown_auths_are_refused(scratch_pipeline):
    name = scratch_pipeline([rest_extract(auth="api_key")])
    with pytest.raises(RuntimeError, match=re.escape(f"deploy.json REST extracts name an unknown auth ({name}: api_key)")):
        tp.plan_settings({name: {}})
    name = scratch_pipeline([rest_extract()])
    assert tp.plan_settings({name: {}})[name]["rest_auths"] == []


ROOT_VALIDATIONS = [
    # (variable, bad values, good values, words of the message)
    ("oauth_token_url", ["http://accounts.example.com/token", "accounts.example.com/token", ""],
     [None, TOKEN_URL], "https://"),
    ("oauth_client_secret_arn", ["spotify-client", "arn:aws:kms:us-east-1:123456789012:key/x", ""],
     [None, OAUTH_SECRET, "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf"], "Secrets Manager secret"),
    ("api_retry_after_max_secs", [-1, 901, 1.5], [None, 0, 120, 900], "from 0 to 900"),
]


@pytest.mark.parametrize("field,bad,good,words", ROOT_VALIDATIONS, ids=[v[0] for v in ROOT_VALIDATIONS])
def test_root_validations(field, bad, good, words):
    """The top-level variable and each pipeline's value are checked by the root, and the
    per-pipeline check by modules/pipeline_settings too (same condition)."""
    variables = tp.blocks(tp.TF_DIR, "variable")
    (top,) = variables[field]["validation"]
    (per_pipeline,) = [v for v in variables["pipelines"]["validation"] if f"p.{field}" in v["condition"]]
    module = [v for v in tp.blocks(tp.MODULES_DIR / "pipeline_settings", "variable")["pipelines"]["validation"]
              if f"p.{field}" in v["condition"]]
    assert [v["condition"] for v in module] == [per_pipeline["condition"]]
    for value, ok in [(v, False) for v in bad] + [(v, True) for v in good]:
        assert tp.console_eval(top["condition"][2:-1], {field: value}) is ok, (field, value)
        pipelines = {"deftunes": {field: None}, "spotify": {field: value}}
        assert tp.console_eval(per_pipeline["condition"][2:-1], {"pipelines": pipelines}) is ok, (field, value)
    assert words in tp.unquote(top["error_message"]) and words in tp.unquote(per_pipeline["error_message"])
    # Terraform's own evaluation of the module's validation.
    with pytest.raises(RuntimeError, match=re.escape(words)):
        tp.plan_settings({"spotify": dict(SPOTIFY, **{field: bad[0]})})


# ------------------------------------------------------------------ api-extract's environment and role (HCL)
def api_extract_environment(settings: dict) -> dict[str, str]:
    """api-extract's optional_environment (modules/pipeline) evaluated by Terraform for one
    pipeline's planned settings, with the null values left out as modules/lambda_function does.
    (The plan cannot show it: LAKE_URI holds the bucket's id, so the whole environment is
    known after apply.)"""
    call = tp.blocks(tp.PIPELINE_DIR, "module")["api_extract"]
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    fields = []
    for name, value in call["optional_environment"].items():
        expr = value[2:-1] if value.startswith("${") and value.endswith("}") else value
        expr = re.sub(r"\blocal\.uses_oauth\b", f"({locals_['uses_oauth'][2:-1]})", expr)
        assert "local." not in expr, expr
        expr = re.sub(r"\bvar\.settings\b", "settings", expr)
        fields.append(f"{name} = {expr}")
    settings = {k: v for k, v in settings.items() if k != "athena_queries"}
    expr = "[for settings in [var.settings] : {for k, v in {" + ", ".join(fields) + "} : k => v if v != null}][0]"
    return tp.console_eval(expr, {"settings": settings})


def test_api_extract_sets_oauth_settings_only_when_its_pipeline_uses_oauth():
    call = tp.blocks(tp.PIPELINE_DIR, "module")["api_extract"]
    optional = call["optional_environment"]
    assert OAUTH_ENV | {"API_RETRY_AFTER_MAX_SECS"} == set(optional)
    for name in OAUTH_ENV:
        assert re.fullmatch(r"\$\{local\.uses_oauth \? var\.settings\.oauth_\w+ : null\}", optional[name]), (name, optional[name])
    assert not (OAUTH_ENV | {"API_RETRY_AFTER_MAX_SECS"}) & set(call["environment"])
    assert call["environment"]["API_BASE_URL"] == "${var.settings.api_base_url}"
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    assert locals_["uses_oauth"] == '${contains(var.settings.rest_auths, "oauth2_client_credentials")}'
    # The secret: one conditional statement, and its key's.
    assert locals_["oauth_secret_statements"].startswith("${local.uses_oauth ? [")
    assert "resources = [var.settings.oauth_client_secret_arn]" in locals_["oauth_secret_statements"]
    assert '"secretsmanager:GetSecretValue"' in locals_["oauth_secret_statements"]
    kms = locals_["oauth_secret_kms_statements"]
    assert kms.startswith("${var.settings.oauth_secret_kms_key_arn == null ? [] : local.uses_oauth ? [") and '"kms:Decrypt"' in kms
    for name in ("oauth_secret_statements", "oauth_secret_kms_statements"):
        assert f"local.{name}" in call["policy_statements"], name
        assert f"local.{name}" not in tp.blocks(tp.PIPELINE_DIR, "module")["songs_extract"]["policy_statements"], name
    # Nowhere a client secret in clear.
    for body in tp.lambda_modules().values():
        assert "OAUTH_CLIENT_SECRET" not in tp.module_environment(body)


def test_each_api_extract_gets_the_oauth_settings_of_its_pipeline_only(two):
    assert api_extract_environment(two["deftunes"]) == {}
    assert api_extract_environment(two["spotify"]) == {
        "OAUTH_TOKEN_URL": TOKEN_URL, "OAUTH_CLIENT_ID": "deftunes-catalogue", "OAUTH_CLIENT_SECRET_ARN": OAUTH_SECRET}
    # Top-level OAuth settings do not reach deftunes; the scope and the Retry-After limit when set.
    top = {"oauth_token_url": TOKEN_URL, "oauth_client_id": "top", "oauth_client_secret_arn": OAUTH_SECRET,
           "oauth_scope": "catalogue:read", "api_retry_after_max_secs": 300}
    planned = tp.plan_settings({"deftunes": {}, "spotify": {"api_base_url": SPOTIFY_API}}, **top)
    assert api_extract_environment(planned["deftunes"]) == {"API_RETRY_AFTER_MAX_SECS": "300"}
    assert api_extract_environment(planned["spotify"]) == {
        "OAUTH_TOKEN_URL": TOKEN_URL, "OAUTH_CLIENT_ID": "top", "OAUTH_CLIENT_SECRET_ARN": OAUTH_SECRET,
        "OAUTH_SCOPE": "catalogue:read", "API_RETRY_AFTER_MAX_SECS": "300"}


def test_api_extract_readme_documents_the_oauth_settings():
    readme = (tp.REPO_ROOT / "functions" / "api-extract" / "README.md").read_text()
    rows = {m.group(1): line for line in readme.splitlines() for m in [re.match(r"^\| `([A-Z_]+)` \|", line)] if m}
    for name in (*OAUTH_ENV, "OAUTH_CLIENT_SECRET", "API_RETRY_AFTER_MAX_SECS"):
        assert name in rows, name
    assert "| `120` |" in rows["API_RETRY_AFTER_MAX_SECS"] and "900" in rows["API_RETRY_AFTER_MAX_SECS"]
    assert "local runs only" in rows["OAUTH_CLIENT_SECRET"]


# ------------------------------------------------------------------ the state machine: non-windowed REST sources
def spotify_definition_values() -> dict:
    """What modules/pipeline passes for spotify: its deploy.json extracts, and only the functions
    it deploys (no songs-extract)."""
    values = fake_definition_values(FUNCTION_ARNS)
    values["function_arns"] = {c: a for c, a in values["function_arns"].items() if c in (*PIPELINE_FUNCTIONS, "api-extract")}
    values["extracts"] = tp.deploy_json("spotify")["extracts"]
    return values


@pytest.fixture(scope="module")
def spotify_machine(sfn):
    definition = json.loads(tp.render_template(spotify_definition_values()))
    sfn.create_state_machine(name="spotify-pipeline-as-rendered", definition=json.dumps(definition), roleArn=ROLE_ARN)
    arn = sfn.create_state_machine(name="spotify-pipeline", definition=json.dumps(executable(as_inline(definition))),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    return definition, arn


def test_non_windowed_rest_extracts_get_their_source_only(spotify_machine):
    definition, _ = spotify_machine
    extracts = tp.deploy_json("spotify")["extracts"]
    assert_branches_are(definition, extracts)
    branches = definition["States"]["Process windows"]["ItemProcessor"]["States"]["Extract and transform sources"]["Branches"]
    for branch in branches:
        (extract,) = [s for n, s in branch["States"].items() if n.startswith("Extract ")]
        source = branch["StartAt"].removeprefix("Extract ")
        # {"source": <name>} from the ItemSelector, never merged with the window's request.
        assert extract["Parameters"]["Payload.$"] == f"$.{source}_request", source
        assert extract["Parameters"]["FunctionName"] == FUNCTION_ARNS["api-extract"]
    assert "songs-extract" not in json.dumps(definition)
    # Nothing windowed: a scheduled run is not planned (catching up would read the listings again
    # for every missed day).
    assert "Plan catch-up" not in definition["States"]


SPOTIFY_INPUTS = {
    "dates": ({"start_date": "2020-01-01", "end_date": "2020-01-31"}, 1),
    "scheduled": ({"scheduled_time": "2020-02-01T01:30:00Z"}, 1),
    "empty": ({}, 1),
    "console": ({"Comment": "Insert your JSON here"}, 1),
    "backfill": ({"windows": [{"start_date": "2020-01-01", "end_date": "2020-01-31"},
                              {"start_date": "2020-02-01", "end_date": "2020-02-29"}]}, 2),
}


@pytest.mark.parametrize("case", list(SPOTIFY_INPUTS))
def test_non_windowed_rest_extracts_run_without_dates_whatever_the_input(sfn, spotify_machine, fake, monkeypatch, case):
    """Executed in moto: each source's api-extract receives exactly {"source": <name>} (the
    function takes the previous period before now for its landing date), once per window."""
    _, arn = spotify_machine
    for e in tp.deploy_json("spotify")["extracts"]:
        monkeypatch.setitem(LANDING_PREFIXES, e["source"], e["landing_prefix"])
    happy(fake)
    payload, windows = SPOTIFY_INPUTS[case]
    desc, execution = run(sfn, arn, payload)
    assert desc["status"] == "SUCCEEDED", explain(sfn, execution)
    calls = fake.calls_of("api-extract")
    assert sorted(calls, key=lambda p: p["source"]) == [{"source": s} for s in sorted(SPOTIFY_SOURCES) for _ in range(windows)]
    assert fake.calls_of("songs-extract") == []
    assert len(fake.calls_of("transform")) == len(SPOTIFY_SOURCES) * windows
    assert len(fake.calls_of("redshift-setup")) == 1
    assert [p for p in fake.calls_of("run-control") if "plan" in p] == []
    (report,) = [p["report"] for p in fake.calls_of("run-control") if "report" in p]
    assert (report["status"], report["scheduled"], report["input"]) == ("SUCCEEDED", False, payload)


# ------------------------------------------------------------------ Athena queries of spotify
def test_spotify_athena_queries_are_rendered_with_its_glue_database(two):
    queries = two["spotify"]["athena_queries"]
    assert set(queries) == SPOTIFY_QUERIES
    assert {p.stem for p in (tp.REPO_ROOT / "pipelines" / "spotify" / "athena").glob("*.sql")} == SPOTIFY_QUERIES
    for name, sql in queries.items():
        assert "${" not in sql and '"spotify"."artists"' in sql, name
        assert sql.startswith("-- ") and 0 < len(sql.splitlines()[0].removeprefix("-- ")) <= 1024, name
    assert '"spotify"."playlist_tracks"' in queries["top-artists"]
    renamed = tp.plan_settings({"spotify": dict(SPOTIFY, glue_database_name="spotify_silver")})["spotify"]["athena_queries"]
    assert all('"spotify_silver"."artists"' in sql and '"spotify".' not in sql for sql in renamed.values())


VERSION = re.compile(
    r"SELECT (?P<cols>[\w, ]+)\n\s+FROM \(\n\s+SELECT \w+\.\*, row_number\(\) OVER \(\n"
    r"\s+PARTITION BY (?P<key>[\w, ]+)\n\s+ORDER BY (?P<order>[^\n]+)\n\s+\) AS version_rank\n"
    r'\s+FROM "spotify"\."(?P<table>\w+)" AS \w+\n\s+\) AS versions\n\s+WHERE version_rank = 1\n')


def columns_used(sql: str, aliases: dict[str, str]) -> dict[str, set[str]]:
    """{table: the columns `<alias>.<column>` reads}, for the aliases of each table."""
    used: dict[str, set[str]] = {}
    for alias, column in re.findall(r"\b([a-z]\w*)\.([a-z_]\w*)\b", sql):
        if alias in aliases and column != "*":
            used.setdefault(aliases[alias], set()).add(column)
    return used


def test_top_artists_reads_the_latest_version_of_each_key(two):
    """playlist_tracks and artists are each read through their latest version per key (the
    spec's key, by ingest_on, processing_timestamp, then landing object, as the classicmodels
    queries), with columns the spec's tables have."""
    tables = spec("spotify")["tables"]
    sql = two["spotify"]["athena_queries"]["top-artists"]
    found = [m.groupdict() for m in VERSION.finditer(sql)]
    assert {m["table"] for m in found} == {"playlist_tracks", "artists"} and len(found) == 2 == sql.count('FROM "spotify".')
    for m in found:
        assert [c.strip() for c in m["key"].split(",")] == tables[m["table"]]["key"], m
        assert m["order"] == VERSION_ORDER, m
        assert {c.strip() for c in m["cols"].split(",")} <= set(table_columns("spotify", m["table"])), m
    # p: the latest additions, a: the latest artists; what the final SELECT reads of them.
    final = sql.split("\n)\nSELECT", 1)[1]
    cte_columns = {m["table"]: {c.strip() for c in m["cols"].split(",")} for m in found}
    used = columns_used(final, {"p": "playlist_tracks", "a": "artists"})
    assert used["playlist_tracks"] <= cte_columns["playlist_tracks"] and used["artists"] <= cte_columns["artists"], used
    assert "count(*)" in final and "count(DISTINCT p.playlist_id)" in final
    assert "LEFT JOIN latest_artists AS a ON a.artist_id = p.artist_id" in final
    assert re.search(r"(?m)^ORDER BY playlist_additions DESC\b", final)


def test_artist_popularity_history_uses_window_functions_over_every_version(two):
    sql = two["spotify"]["athena_queries"]["artist-popularity-history"]
    windows = re.findall(r"OVER \(\n\s+PARTITION BY (\w+)\n\s+ORDER BY ([^\n]+)\n\s+\)", sql)
    assert len(windows) == 4 and set(windows) == {("artist_id", "ingest_on, processing_timestamp, source_object")}
    assert "lag(popularity) OVER" in sql and "popularity - lag(popularity) OVER" in sql and "row_number() OVER" in sql
    assert sql.count('FROM "spotify".') == 1 and "version_rank" not in sql, "every version, not the latest only"
    selected = re.findall(r"(?m)^  (?:[^\n]*?\bAS )?(\w+),?$", sql.split("\nFROM ")[0])
    columns = set(table_columns("spotify", "artists"))
    computed = {"version_number", "previous_popularity", "popularity_change", "followers_change"}
    assert set(selected) - computed <= columns and computed <= set(selected), selected


# Sample versions: (key..., data..., ingest_on, processing_timestamp, source_object)
ARTISTS = [
    # a1: three versions over three days (popularity 50 -> 55 -> 53).
    ("a1", "Ada", "jazz", 50, 100, "2024-01-01", "2024-01-02 01:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-01/p0"),
    ("a1", "Ada", "jazz", 55, 120, "2024-01-02", "2024-01-03 01:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-02/p0"),
    ("a1", "Ada", "jazz", 53, 120, "2024-01-03", "2024-01-04 01:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-03/p0"),
    # a2: one version.
    ("a2", "Bix", "rock", 80, 900, "2024-01-01", "2024-01-02 01:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-01/p0"),
    # a3: same day, later processing wins; then same processing, later landing object wins.
    ("a3", "Cy", "pop", 10, 5, "2024-01-02", "2024-01-03 01:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-02/p0"),
    ("a3", "Cy", "pop", 12, 6, "2024-01-02", "2024-01-03 02:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-02/p0"),
    ("a3", "Cy", "pop", 15, 7, "2024-01-02", "2024-01-03 02:00:00", "landing_zone/spotify/artists/ingest_on=2024-01-02/p1"),
]
PLAYLIST_TRACKS = [
    # a1: three additions in two playlists; one of them landed twice (its position changed).
    ("pl1", "Mix", "u1", 0, "t1", "al1", "a1", "2024-01-01 10:00:00", "u1", "2024-01-01", "2024-01-02 01:00:00", "o1"),
    ("pl1", "Mix", "u1", 1, "t1", "al1", "a1", "2024-01-01 10:00:00", "u1", "2024-01-02", "2024-01-03 01:00:00", "o2"),
    ("pl1", "Mix", "u1", 1, "t2", "al1", "a1", "2024-01-01 11:00:00", "u1", "2024-01-01", "2024-01-02 01:00:00", "o1"),
    ("pl2", "Jazz", "u2", 0, "t1", "al1", "a1", "2024-01-02 09:00:00", "u2", "2024-01-02", "2024-01-03 01:00:00", "o2"),
    # a4: not landed in artists yet, two additions; a2: one; and one addition without an artist.
    ("pl2", "Jazz", "u2", 1, "t9", "al9", "a4", "2024-01-02 09:30:00", "u2", "2024-01-02", "2024-01-03 01:00:00", "o2"),
    ("pl3", "New", "u3", 0, "t9", "al9", "a4", "2024-01-03 08:00:00", "u3", "2024-01-03", "2024-01-04 01:00:00", "o3"),
    ("pl3", "New", "u3", 1, "t5", "al5", "a2", "2024-01-03 08:05:00", "u3", "2024-01-03", "2024-01-04 01:00:00", "o3"),
    ("pl3", "New", "u3", 2, "t6", "al6", None, "2024-01-03 08:10:00", "u3", "2024-01-03", "2024-01-04 01:00:00", "o3"),
]


@pytest.fixture
def lake():
    """The spotify tables in SQLite (attached as "spotify", so that "spotify"."<table>" resolves),
    each with exactly the spec's columns and the ones transform adds, filled with the samples."""
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH DATABASE ':memory:' AS spotify")
    for table, rows in (("artists", ARTISTS), ("playlist_tracks", PLAYLIST_TRACKS)):
        columns = table_columns("spotify", table)
        db.execute(f'CREATE TABLE "spotify"."{table}" ({", ".join(columns)})')
        data = [c for c in columns if c not in ADDED_COLUMNS]
        for row in rows:
            record = dict(zip(data + ["ingest_on", "processing_timestamp", "source_object"], row, strict=True))
            record.update(record_hash=f"h{hash(row) & 0xffff}", source_from="spotify_api")
            db.execute(f'INSERT INTO "spotify"."{table}" ({", ".join(record)}) VALUES ({", ".join("?" * len(record))})',
                       list(record.values()))
    yield db
    db.close()


def query(db, sql: str) -> list[dict]:
    cursor = db.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_top_artists_answers_on_sample_versions(two, lake):
    """Executed (SQLite: the same window functions and joins) over versions of the spec's tables:
    an unknown column would fail. Each addition counts once, with its artist's latest version."""
    rows = query(lake, two["spotify"]["athena_queries"]["top-artists"])
    assert [(r["artist_id"], r["playlist_additions"], r["playlists"], r["tracks"]) for r in rows] == [
        ("a1", 3, 2, 2), ("a4", 2, 2, 1), ("a2", 1, 1, 1)]
    by_id = {r["artist_id"]: r for r in rows}
    assert (by_id["a1"]["name"], by_id["a1"]["popularity"], by_id["a1"]["followers"]) == ("Ada", 53, 120)
    assert by_id["a1"]["last_added_at"] == "2024-01-02 09:00:00"
    assert by_id["a4"]["name"] is None and by_id["a4"]["popularity"] is None
    assert by_id["a2"]["popularity"] == 80


def test_artist_popularity_history_answers_on_sample_versions(two, lake):
    rows = query(lake, two["spotify"]["athena_queries"]["artist-popularity-history"])
    got = [(r["artist_id"], r["version_number"], r["popularity"], r["previous_popularity"], r["popularity_change"],
            r["followers_change"]) for r in rows]
    assert got == [
        ("a1", 1, 50, None, None, None), ("a1", 2, 55, 50, 5, 20), ("a1", 3, 53, 55, -2, 0),
        ("a2", 1, 80, None, None, None),
        ("a3", 1, 10, None, None, None), ("a3", 2, 12, 10, 2, 1), ("a3", 3, 15, 12, 3, 1),
    ]
    assert {r["name"] for r in rows} == {"Ada", "Bix", "Cy"} and rows[1]["ingest_on"] == "2024-01-02"


# ------------------------------------------------------------------ the root, planned
PLANNED = {
    "api_base_url": "https://api.deftunes.example.com/",
    "pg_host": "deftunes-db.example.com",
    "pg_secret_arn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds-db-AbCdEf",
    "oauth_secret_kms_key_arn": OAUTH_KEY,
    "redshift_subnet_ids": ["subnet-0aaa1111", "subnet-0bbb2222", "subnet-0ccc3333"],
    "redshift_security_group_ids": ["sg-0redshift"],
    "dbt_security_group_ids": ["sg-0dbt"],
    "pipelines": TWO,
}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return tp.plan_root(tmp_path_factory.mktemp("plan-oauth"), {"two": PLANNED})["two"]


def _document(plan, pipeline: str, module: str = "api_extract") -> list[dict]:
    address = f'module.pipeline["{pipeline}"].module.{module}[0].data.aws_iam_policy_document.this'
    (change,) = [r["change"] for r in plan["resource_changes"] if r["address"] == address]
    return change["after"]["statement"]


def test_plan_deploys_spotifys_api_extract_and_no_sql_extractor(plan):
    functions = {c["after"]["function_name"] for c in tp.plan_changes(plan, "aws_lambda_function").values()}
    assert sorted(n for n in functions if n.startswith("deftunes-spotify-")) == [
        "deftunes-spotify-api-extract", "deftunes-spotify-redshift-setup", "deftunes-spotify-run-control",
        "deftunes-spotify-transform"]
    assert {"deftunes-api-extract", "deftunes-songs-extract"} <= functions


def test_plan_lets_only_spotifys_api_extract_read_the_client_secret(plan):
    statements = _document(plan, "spotify")
    secrets = [(s["actions"], s["resources"]) for s in statements if any(a.startswith("secretsmanager:") for a in s["actions"])]
    assert secrets == [(["secretsmanager:GetSecretValue"], [OAUTH_SECRET])]
    keys = [(s["actions"], s["resources"]) for s in statements if any(a.startswith("kms:") for a in s["actions"])]
    assert keys == [(["kms:Decrypt"], [OAUTH_KEY])]
    # deftunes' api-extract: no secret, no key.
    assert not [s for s in _document(plan, "deftunes") if any(a.startswith(("secretsmanager:", "kms:")) for a in s["actions"])]
    # No other role may read the client secret or use its key.
    for r in plan["resource_changes"]:
        if r["type"] == "aws_iam_policy_document" and r["mode"] == "data" and 'spotify"].module.api_extract' not in r["address"]:
            text = json.dumps(r["change"]["after"])
            assert OAUTH_SECRET not in text and OAUTH_KEY not in text, r["address"]


def test_plan_has_spotifys_named_queries(plan):
    queries = {c["after"]["name"]: c["after"] for c in tp.plan_changes(plan, "aws_athena_named_query").values()}
    for name in SPOTIFY_QUERIES:
        q = queries[f"deftunes-spotify-{name}"]
        assert q["database"] == "spotify" and '"spotify"."artists"' in q["query"], name
        assert q["description"] == q["query"].splitlines()[0].removeprefix("-- ")
    assert all(f"deftunes-spotify-{t}-snapshots" in queries for t in tp.deploy_json("spotify")["tables"])
    assert len(queries) == sum(1 + len(tp.deploy_json(k)["tables"]) for k in TWO) + len(SPOTIFY_QUERIES)


# ------------------------------------------------------------------ documentation
def test_terraform_readme_documents_the_oauth_settings():
    readme = (tp.TF_DIR / "README.md").read_text()
    table = readme.split("| variable | what |", 1)[1].split("\n\n", 1)[0]
    for name in (*OAUTH_SETTINGS, "api_retry_after_max_secs"):
        assert f"`{name}`" in table, name
    section = readme.split("### Deploying spotify (an OAuth REST source)", 1)[1].split("\n### ", 1)[0]
    for needle in ("oauth_token_url", "oauth_client_id", "oauth_client_secret_arn", "api_base_url",
                   "secretsmanager:GetSecretValue", "OAUTH_CLIENT_SECRET_ARN", "top-artists", "artist-popularity-history"):
        assert needle in section, needle
