"""SQL sources of several engines and the pipelines' own Athena queries.

deploy.json's SQL extracts (function songs-extract) name their engine, postgres or mysql: a
pipeline's songs-extract gets the connection settings (PG_*, MYSQL_*) and the secret of the
engines its sources use, and only these; the plan fails, naming the pipeline, when they are not
configured. pipelines/<name>/athena/*.sql become Athena named queries over the pipeline's Glue
database (classicmodels: monthly sales by product line and by customer country).

modules/pipeline_settings and modules/operations_settings are evaluated by Terraform itself; then
the whole root is planned with the local AWS provider for deftunes (PostgreSQL), classicmodels
(MySQL) and sparkify (files only)."""

from __future__ import annotations

import json
import re
import shutil
import tomllib

import pytest

import tfparse as tp
from test_operations import SETTINGS, settings_inputs

PG_SECRET = f"arn:aws:secretsmanager:{tp.PLAN_REGION}:{tp.PLAN_ACCOUNT}:secret:rds-db-AbCdEf"
MYSQL_SECRET = f"arn:aws:secretsmanager:{tp.PLAN_REGION}:{tp.PLAN_ACCOUNT}:secret:classicmodels-db-AbCdEf"
MYSQL_HOST = "classicmodels-db.abcdefghij.us-east-1.rds.amazonaws.com"
PG_KEY = f"arn:aws:kms:{tp.PLAN_REGION}:{tp.PLAN_ACCOUNT}:key/00000000-0000-0000-0000-00000000000a"
MYSQL_KEY = f"arn:aws:kms:{tp.PLAN_REGION}:{tp.PLAN_ACCOUNT}:key/00000000-0000-0000-0000-00000000000b"

THREE = {"deftunes": {}, "classicmodels": {"mysql_host": MYSQL_HOST, "mysql_secret_arn": MYSQL_SECRET}, "sparkify": {}}
# No top-level MySQL settings: what classicmodels gets is its own.
NO_TOP_MYSQL = {"mysql_host": None, "mysql_secret_arn": None}

PG_ENV = {"PG_HOST", "PG_PORT", "PG_DATABASE", "PG_USER", "PG_SECRET_ARN", "PG_SSLMODE", "PG_CONNECT_TIMEOUT_SECS"}
MYSQL_ENV = {"MYSQL_HOST", "MYSQL_PORT", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_SECRET_ARN", "MYSQL_SSLMODE",
             "MYSQL_CONNECT_TIMEOUT_SECS"}
SALES_QUERIES = {"monthly-sales-by-product-line", "monthly-sales-by-customer-country"}
VERSION_ORDER = "ingest_on DESC, processing_timestamp DESC, source_object DESC"


@pytest.fixture(scope="module")
def three():
    return tp.plan_settings(THREE, **NO_TOP_MYSQL)


def spec(pipeline: str) -> dict:
    return tomllib.loads((tp.REPO_ROOT / "pipelines" / pipeline / "pipeline.toml").read_text())


@pytest.fixture
def scratch_pipeline():
    """pipelines/tf-test-engines/ with the deploy.json (and files) a test writes; removed after."""
    folder = tp.REPO_ROOT / "pipelines" / "tf-test-engines"
    assert not folder.exists(), folder
    folder.mkdir()

    def write(extracts: list[dict], files: dict[str, str] | None = None) -> str:
        (folder / "deploy.json").write_text(json.dumps({
            "name": folder.name, "namespace": "tf_test_engines", "landing_prefixes": ["landing_zone/tftest/a/"],
            "extracts": extracts, "tables": ["a"], "dbt_project": "dbt", "dbt_project_dir": f"pipelines/{folder.name}/dbt",
        }))
        for rel, text in (files or {}).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        return folder.name

    try:
        yield write
    finally:
        shutil.rmtree(folder)


def sql_extract(**extra) -> dict:
    return {"source": "a", "function": "songs-extract", "windowed": False, "landing_prefix": "landing_zone/tftest/a/", **extra}


# ------------------------------------------------------------------ settings of each engine
def test_deploy_json_names_the_engine_of_each_sql_extract():
    assert {(e["function"], e.get("engine")) for e in tp.deploy_json("classicmodels")["extracts"]} == {("songs-extract", "mysql")}
    songs = [e for e in tp.deploy_json("deftunes")["extracts"] if e["function"] == "songs-extract"]
    assert [(e["source"], e["engine"]) for e in songs] == [("songs", "postgres")]


def test_each_pipeline_gets_the_engines_of_its_sql_sources(three):
    d, c, s = three["deftunes"], three["classicmodels"], three["sparkify"]
    assert (d["sql_engines"], c["sql_engines"], s["sql_engines"]) == (["postgres"], ["mysql"], [])
    assert c["extract_functions"] == ["songs-extract"]
    # classicmodels' own settings, and the top-level defaults for the rest.
    assert (c["mysql_host"], c["mysql_secret_arn"]) == (MYSQL_HOST, MYSQL_SECRET)
    assert (c["mysql_port"], c["mysql_user"], c["mysql_sslmode"], c["mysql_database"]) == (
        tp.variable_default(tp.TF_DIR, "mysql_port"), tp.variable_default(tp.TF_DIR, "mysql_user"),
        tp.variable_default(tp.TF_DIR, "mysql_sslmode"), None)
    assert (tp.variable_default(tp.TF_DIR, "mysql_port"), tp.variable_default(tp.TF_DIR, "mysql_sslmode")) == (3306, "require")
    # The root passes every top-level MySQL setting as the default of every pipeline.
    defaults = tp.blocks(tp.TF_DIR, "module")["pipeline_settings"]["defaults"]
    for name in ("mysql_host", "mysql_port", "mysql_database", "mysql_user", "mysql_secret_arn", "mysql_sslmode"):
        assert defaults[name] == f"${{var.{name}}}", name


def test_mysql_overrides_and_top_level_defaults():
    planned = tp.plan_settings({"classicmodels": {"mysql_port": 3307, "mysql_user": "etl", "mysql_database": "classicmodels",
                                                  "mysql_sslmode": "verify-full"}},
                               mysql_host="top-db.example.com", mysql_secret_arn=MYSQL_SECRET)
    c = planned["classicmodels"]
    assert (c["mysql_host"], c["mysql_port"], c["mysql_user"], c["mysql_database"], c["mysql_sslmode"]) == (
        "top-db.example.com", 3307, "etl", "classicmodels", "verify-full")


def test_songs_table_overrides_the_primary_pipelines_table_only():
    """SONGS_TABLE replaces the one SQL table source of a pipeline: songs-extract refuses it for
    classicmodels (six table sources), so the top-level songs_table is deftunes' only."""
    assert tp.variable_default(tp.TF_DIR, "songs_table") is None
    planned = tp.plan_settings(THREE, songs_table="deftunes.songs", **NO_TOP_MYSQL)
    assert (planned["deftunes"]["songs_table"], planned["classicmodels"]["songs_table"]) == ("deftunes.songs", None)
    assert tp.plan_settings(THREE, **NO_TOP_MYSQL)["deftunes"]["songs_table"] is None
    own = tp.plan_settings(dict(THREE, classicmodels=dict(THREE["classicmodels"], songs_table="classicmodels.orders")), **NO_TOP_MYSQL)
    assert own["classicmodels"]["songs_table"] == "classicmodels.orders"
    env = tp.module_environment(tp.blocks(tp.PIPELINE_DIR, "module")["songs_extract"])
    assert env["SONGS_TABLE"] == "${var.settings.songs_table}"


@pytest.mark.parametrize("missing", [{"mysql_host": None}, {"mysql_secret_arn": None}, {"mysql_host": None, "mysql_secret_arn": None}],
                         ids=["host", "secret", "both"])
def test_a_pipeline_with_a_mysql_source_needs_its_host_and_secret(missing):
    pipelines = dict(THREE, classicmodels=dict(THREE["classicmodels"], **missing))
    with pytest.raises(RuntimeError, match=re.escape("Pipeline(s) classicmodels extract from MySQL: set mysql_host and mysql_secret_arn")):
        tp.plan_settings(pipelines, **NO_TOP_MYSQL)
    # The top-level values fill in what the pipeline lacks.
    assert tp.plan_settings(pipelines, mysql_host="db", mysql_secret_arn=MYSQL_SECRET)["classicmodels"]["sql_engines"] == ["mysql"]


def test_each_engine_is_needed_only_by_the_pipelines_that_use_it():
    # MySQL only: no PostgreSQL settings needed, and the other way round; files only: neither.
    assert tp.plan_settings({"classicmodels": THREE["classicmodels"]}, pg_host=None, pg_secret_arn=None, **NO_TOP_MYSQL)
    assert tp.plan_settings({"deftunes": {}}, **NO_TOP_MYSQL)["deftunes"]["sql_engines"] == ["postgres"]
    assert tp.plan_settings({"sparkify": {}}, pg_host=None, pg_secret_arn=None, **NO_TOP_MYSQL)["sparkify"]["sql_engines"] == []
    with pytest.raises(RuntimeError, match=re.escape("Pipeline(s) deftunes extract from PostgreSQL: set pg_host and pg_secret_arn")):
        tp.plan_settings(THREE, pg_secret_arn=None, **NO_TOP_MYSQL)


def test_unknown_engines_are_refused_and_an_extract_without_engine_is_postgres(scratch_pipeline):
    name = scratch_pipeline([sql_extract()])
    assert tp.plan_settings({name: {}})[name]["sql_engines"] == ["postgres"]
    name = scratch_pipeline([sql_extract(engine="oracle")])
    with pytest.raises(RuntimeError, match=re.escape(f"deploy.json SQL extracts name unknown engines ({name}: oracle)")):
        tp.plan_settings({name: {}})


@pytest.mark.parametrize("field", ["pg_sslmode", "mysql_sslmode"])
def test_sslmode_validations(field):
    """The root checks the TLS modes songs-extract accepts, top-level and per pipeline."""
    variables = tp.blocks(tp.TF_DIR, "variable")
    (top,) = variables[field]["validation"]
    (per_pipeline,) = [v for v in variables["pipelines"]["validation"] if f"p.{field}" in v["condition"]]
    for mode, ok in (("disable", True), ("require", True), ("verify-full", True), ("prefer", False), ("verify-ca", False)):
        assert tp.console_eval(top["condition"][2:-1], {field: mode}) is ok, (field, mode)
        pipelines = {"deftunes": {field: None}, "classicmodels": {field: mode}}
        assert tp.console_eval(per_pipeline["condition"][2:-1], {"pipelines": pipelines}) is ok, (field, mode)
    assert field in tp.unquote(per_pipeline["error_message"])


# ------------------------------------------------------------------ songs-extract's environment and role (HCL)
def test_songs_extract_sets_each_engines_settings_only_when_its_pipeline_uses_it():
    call = tp.blocks(tp.PIPELINE_DIR, "module")["songs_extract"]
    optional = call["optional_environment"]
    assert PG_ENV | MYSQL_ENV <= set(optional)
    for name in PG_ENV:
        assert re.fullmatch(r"\$\{local\.uses_postgres \? .+ : null\}", optional[name]), (name, optional[name])
    for name in MYSQL_ENV:
        assert re.fullmatch(r"\$\{local\.uses_mysql \? .+ : null\}", optional[name]), (name, optional[name])
    assert not (PG_ENV | MYSQL_ENV) & set(call["environment"])
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    assert locals_["uses_postgres"] == '${contains(var.settings.sql_engines, "postgres")}'
    assert locals_["uses_mysql"] == '${contains(var.settings.sql_engines, "mysql")}'
    # lambda_function leaves the null ones out.
    fn = tp.resources(tp.MODULES_DIR / "lambda_function", "aws_lambda_function")["this"]
    assert fn["environment"][0]["variables"] == "${merge(var.environment, {for k, v in var.optional_environment : k => v if v != null})}"
    # The secrets: no longer in the function's fixed statements, one conditional statement per engine.
    fixed = tp.locals_of(tp.PIPELINE_DIR)["function_statements"]['"songs-extract"']
    assert not [st for st in fixed if "secretsmanager" in str(st["actions"])]
    for name, condition, resource in (("pg_secret_statements", "local.uses_postgres", "var.settings.pg_secret_arn"),
                                      ("mysql_secret_statements", "local.uses_mysql", "var.settings.mysql_secret_arn")):
        assert locals_[name].startswith(f"${{{condition} ? [") and f"resources = [{resource}]" in locals_[name], locals_[name]
        assert f"local.{name}" in call["policy_statements"], name


# ------------------------------------------------------------------ Athena queries of a pipeline
def test_pipeline_athena_queries_are_rendered_with_its_glue_database(three):
    queries = three["classicmodels"]["athena_queries"]
    assert set(queries) == SALES_QUERIES
    assert {p.stem for p in (tp.REPO_ROOT / "pipelines" / "classicmodels" / "athena").glob("*.sql")} == SALES_QUERIES
    for name, sql in queries.items():
        assert "${" not in sql and '"classicmodels"."orderdetails"' in sql and '"classicmodels"."orders"' in sql, name
    assert three["deftunes"]["athena_queries"] == {} and three["sparkify"]["athena_queries"] == {}
    renamed = tp.plan_settings({"classicmodels": dict(THREE["classicmodels"], glue_database_name="cm_silver")}, **NO_TOP_MYSQL)
    assert all('"cm_silver"."orders"' in sql for sql in renamed["classicmodels"]["athena_queries"].values())


def test_sales_queries_keep_the_latest_version_of_each_key(three):
    """Each table is read through its latest version per key (the spec's key, ordered by
    ingest_on, processing_timestamp, then the landing object, as dbt's staging models do), with
    columns the spec's table has; revenue is quantity_ordered * price_each by month of order_date."""
    tables = spec("classicmodels")["tables"]
    version = re.compile(
        r"SELECT (?P<cols>[\w, ]+)\n\s+FROM \(\n\s+SELECT \w+\.\*, row_number\(\) OVER \(\n"
        r"\s+PARTITION BY (?P<key>[\w, ]+)\n\s+ORDER BY (?P<order>[^\n]+)\n\s+\) AS version_rank\n"
        r'\s+FROM "classicmodels"\."(?P<table>\w+)" AS \w+\n\s+\) AS versions\n\s+WHERE version_rank = 1\n')
    read = {}
    for name, sql in three["classicmodels"]["athena_queries"].items():
        found = [m.groupdict() for m in version.finditer(sql)]
        assert len(found) == 3 == sql.count('FROM "classicmodels".'), name
        for m in found:
            table = tables[m["table"]]
            assert [c.strip() for c in m["key"].split(",")] == table["key"], (name, m)
            assert m["order"] == VERSION_ORDER, (name, m)
            columns = {c["name"] for c in table["columns"]}
            assert {c.strip() for c in m["cols"].split(",")} <= columns, (name, m)
        read[name] = {m["table"] for m in found}
        assert "sum(l.quantity_ordered * l.price_each)" in sql and "date_trunc('month', o.order_date)" in sql, name
        assert "count(DISTINCT l.order_number)" in sql and "sum(l.quantity_ordered)" in sql, name
        assert re.search(r"(?m)^GROUP BY 1, 2$", sql), name
        # As the BI views: cancelled orders are left out.
        assert re.search(r"(?m)^WHERE o\.status <> 'Cancelled'$", sql), name
    assert read == {"monthly-sales-by-product-line": {"orderdetails", "orders", "products"},
                    "monthly-sales-by-customer-country": {"orderdetails", "orders", "customers"}}
    assert "p.product_line" in three["classicmodels"]["athena_queries"]["monthly-sales-by-product-line"]
    country = three["classicmodels"]["athena_queries"]["monthly-sales-by-customer-country"]
    assert "coalesce(c.country, 'unknown')" in country and "LEFT JOIN customers AS c" in country


def test_athena_query_files_need_plain_names(scratch_pipeline):
    name = scratch_pipeline([], {"athena/Sales Report.sql": "SELECT 1"})
    with pytest.raises(RuntimeError, match=re.escape(f"pipelines/{name}/athena/Sales Report.sql")):
        tp.plan_settings({name: {}})
    name = scratch_pipeline([], {"athena/Sales Report.sql": "SELECT 1", "athena/notes.txt": "not a query"})
    # Only *.sql files are queries; a valid name is rendered with the database.
    (tp.REPO_ROOT / "pipelines" / name / "athena" / "Sales Report.sql").unlink()
    (tp.REPO_ROOT / "pipelines" / name / "athena" / "rows.sql").write_text('SELECT count(*) FROM "${database}"."a" -- ${pipeline}')
    assert tp.plan_settings({name: {}})[name]["athena_queries"] == {"rows": f'SELECT count(*) FROM "tf_test_engines"."a" -- {name}'}


def test_operations_names_each_pipelines_own_queries(three):
    ops = tp.apply_module(SETTINGS, settings_inputs(three))
    queries = ops["named_queries"]
    c = three["classicmodels"]
    for name in SALES_QUERIES:
        q = queries[f"classicmodels/{name}"]
        sql = c["athena_queries"][name]
        assert q["name"] == f"{c['name']}-{name}" == f"deftunes-classicmodels-{name}"
        assert (q["database"], q["query"]) == ("classicmodels", sql)
        assert q["description"] == sql.splitlines()[0].removeprefix("-- ") and 0 < len(q["description"]) <= 1024
    # classicmodels' tables are counted and their snapshots listed, as every pipeline's.
    for t in tp.deploy_json("classicmodels")["tables"]:
        assert f'"classicmodels"."{t}"' in queries["classicmodels/row-counts"]["query"]
        assert queries[f"classicmodels/{t}-snapshots"]["database"] == "classicmodels"
    assert len(queries) == sum(1 + len(tp.deploy_json(k)["tables"]) for k in THREE) + len(SALES_QUERIES)
    # A query named like a built-in one is refused rather than replacing it.
    inputs = settings_inputs(three)
    inputs["pipelines"]["classicmodels"]["athena_queries"] = {"row-counts": "SELECT 1"}
    with pytest.raises(RuntimeError, match=re.escape("has the name of a built-in one")):
        tp.apply_module(SETTINGS, inputs)
    assert re.search(r"athena_queries\s*=\s*local\.pipelines\[k\]\.athena_queries\b", tp.blocks(tp.TF_DIR, "module")["operations"]["pipelines"])


# ------------------------------------------------------------------ the root, planned
PLANNED = {
    "api_base_url": "https://api.deftunes.example.com/",
    "pg_host": "deftunes-db.example.com",
    "pg_secret_arn": PG_SECRET,
    "pg_secret_kms_key_arn": PG_KEY,
    "mysql_secret_kms_key_arn": MYSQL_KEY,
    "redshift_subnet_ids": ["subnet-0aaa1111", "subnet-0bbb2222", "subnet-0ccc3333"],
    "redshift_security_group_ids": ["sg-0redshift"],
    "dbt_security_group_ids": ["sg-0dbt"],
    "pipelines": THREE,
}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return tp.plan_root(tmp_path_factory.mktemp("plan-sql"), {"three": PLANNED})["three"]


def _functions(plan) -> dict[str, dict]:
    return {c["after"]["function_name"]: c for c in tp.plan_changes(plan, "aws_lambda_function").values()}


def optional_environment(settings: dict) -> dict[str, str]:
    """songs-extract's optional_environment (modules/pipeline) evaluated by Terraform for one
    pipeline's planned settings, with the null values left out as modules/lambda_function does.
    (The plan cannot show it: LAKE_URI holds the bucket's id, so the provider plans the whole
    environment as known after apply.)"""
    call = tp.blocks(tp.PIPELINE_DIR, "module")["songs_extract"]
    locals_ = tp.locals_of(tp.PIPELINE_DIR)
    fields = []
    for name, value in call["optional_environment"].items():
        expr = value[2:-1] if value.startswith("${") and value.endswith("}") else value
        for local in ("uses_postgres", "uses_mysql"):
            expr = re.sub(rf"\blocal\.{local}\b", f"({locals_[local][2:-1]})", expr)
        assert "local." not in expr, expr
        expr = re.sub(r"\bvar\.settings\b", "settings", expr)
        fields.append(f"{name} = {expr}")
    # The settings once (terraform console reads one line), without the queries' SQL.
    settings = {k: v for k, v in settings.items() if k != "athena_queries"}
    expr = "[for settings in [var.settings] : {for k, v in {" + ", ".join(fields) + "} : k => v if v != null}][0]"
    return tp.console_eval(expr, {"settings": settings})


def test_each_songs_extract_gets_the_settings_of_its_engines_only(three):
    deftunes = optional_environment(three["deftunes"])
    assert set(deftunes) == PG_ENV
    assert (deftunes["PG_HOST"], deftunes["PG_SECRET_ARN"], deftunes["PG_PORT"]) == ("deftunes-db.example.com", tp.settings_defaults()["pg_secret_arn"], "5432")
    classicmodels = optional_environment(three["classicmodels"])
    assert classicmodels == {"MYSQL_HOST": MYSQL_HOST, "MYSQL_PORT": "3306", "MYSQL_USER": "admin", "MYSQL_SECRET_ARN": MYSQL_SECRET,
                             "MYSQL_SSLMODE": "require", "MYSQL_CONNECT_TIMEOUT_SECS": "10"}
    # With a database and a songs_table of its own, they are set too.
    own = tp.plan_settings({"classicmodels": dict(THREE["classicmodels"], mysql_database="classicmodels", songs_table="classicmodels.orders")},
                           **NO_TOP_MYSQL)["classicmodels"]
    assert optional_environment(own) == dict(classicmodels, MYSQL_DATABASE="classicmodels", SONGS_TABLE="classicmodels.orders")
    # Top-level MySQL settings do not reach a PostgreSQL-only pipeline, nor the other way round.
    both = tp.plan_settings(THREE, mysql_host=MYSQL_HOST, mysql_secret_arn=MYSQL_SECRET)
    assert set(optional_environment(both["deftunes"])) == PG_ENV
    assert set(optional_environment(both["classicmodels"])) == MYSQL_ENV - {"MYSQL_DATABASE"}
    # No password in clear, anywhere.
    for body in tp.lambda_modules().values():
        assert not {"PG_PASSWORD", "MYSQL_PASSWORD"} & set(tp.module_environment(body))


def test_plan_deploys_songs_extract_where_a_pipeline_has_sql_sources(plan):
    functions = _functions(plan)
    assert {"deftunes-songs-extract", "deftunes-classicmodels-songs-extract"} <= set(functions)
    # classicmodels has SQL sources only; sparkify (files only) has no extract function, so neither
    # database's settings.
    assert "deftunes-classicmodels-api-extract" not in functions
    assert sorted(n for n in functions if n.startswith("deftunes-sparkify-")) == [
        "deftunes-sparkify-redshift-setup", "deftunes-sparkify-run-control", "deftunes-sparkify-transform"]
    for name in ("deftunes-songs-extract", "deftunes-classicmodels-songs-extract"):
        assert functions[name]["after"]["vpc_config"] == [], name


def _document(plan, pipeline: str) -> list[dict]:
    address = f'module.pipeline["{pipeline}"].module.songs_extract[0].data.aws_iam_policy_document.this'
    (change,) = [r["change"] for r in plan["resource_changes"] if r["address"] == address]
    return change["after"]["statement"]


def test_plan_lets_each_songs_extract_read_the_secret_of_its_engines_only(plan):
    for pipeline, secret, key in (("deftunes", PG_SECRET, PG_KEY), ("classicmodels", MYSQL_SECRET, MYSQL_KEY)):
        statements = _document(plan, pipeline)
        secrets = [(s["actions"], s["resources"]) for s in statements if any(a.startswith("secretsmanager:") for a in s["actions"])]
        assert secrets == [(["secretsmanager:GetSecretValue"], [secret])], pipeline
        keys = [(s["actions"], s["resources"]) for s in statements if any(a.startswith("kms:") for a in s["actions"])]
        assert keys == [(["kms:Decrypt"], [key])], pipeline
    # No other role may read the MySQL secret or use its key.
    for r in plan["resource_changes"]:
        if r["type"] == "aws_iam_policy_document" and r["mode"] == "data" and "classicmodels\"].module.songs_extract" not in r["address"]:
            text = json.dumps(r["change"]["after"])
            assert MYSQL_SECRET not in text and MYSQL_KEY not in text, r["address"]


def test_plan_has_classicmodels_named_queries(plan):
    queries = {c["after"]["name"]: c["after"] for c in tp.plan_changes(plan, "aws_athena_named_query").values()}
    for name in SALES_QUERIES:
        q = queries[f"deftunes-classicmodels-{name}"]
        assert q["database"] == "classicmodels" and '"classicmodels"."orderdetails"' in q["query"], name
    assert all(f"deftunes-classicmodels-{t}-snapshots" in queries for t in tp.deploy_json("classicmodels")["tables"])
    assert not [n for n in queries if "sales" in n and not n.startswith("deftunes-classicmodels-")]
    assert len(queries) == sum(1 + len(tp.deploy_json(k)["tables"]) for k in THREE) + len(SALES_QUERIES)
