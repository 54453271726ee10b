# Resolves var.pipelines against each pipeline's deploy.json (generated from its pipeline.toml)
# and the top-level defaults: one settings object per pipeline, which modules/pipeline deploys.
# The checks that keep pipelines apart (names, Glue databases, Redshift schemas, landing
# prefixes) are preconditions of the output, so a bad configuration fails the plan.

locals {
  # null where pipelines/<key>/deploy.json is missing or not JSON (a precondition says so).
  deploy = { for k, _ in var.pipelines : k => try(jsondecode(file("${var.pipelines_dir}/${k}/deploy.json")), null) }

  extract_functions = ["api-extract", "songs-extract"]
  # The engines songs-extract reads (a deploy.json SQL extract's "engine"), each with its own
  # connection settings: pg_* (PG_*) and mysql_* (MYSQL_*).
  sql_engines = ["mysql", "postgres"]
  # How api-extract authenticates to a REST source (a deploy.json REST extract's "auth"; none:
  # no authentication): OAuth 2.0 client credentials, with the OAUTH_* settings.
  rest_auths = ["oauth2_client_credentials"]

  # The Iceberg namespace is the spec's, unless overridden.
  glue_database_names = { for k, p in var.pipelines : k => coalesce(p.glue_database_name, try(local.deploy[k].namespace, k)) }

  # Optional Athena named queries of a pipeline: pipelines/<key>/athena/<name>.sql, rendered by
  # templatefile() with the pipeline's Glue database (${database}) and key (${pipeline}).
  athena_files = { for k, _ in var.pipelines : k => sort(fileset("${var.pipelines_dir}/${k}/athena", "*.sql")) }

  # The "auth" of each pipeline's REST extracts (api-extract), e.g. ["oauth2_client_credentials"]
  # for spotify, [] for deftunes: what its api-extract needs beside api_base_url.
  pipeline_rest_auths = {
    for k, _ in var.pipelines : k => sort(distinct([
      for e in try(local.deploy[k].extracts, []) : try(e.auth, null) if e.function == "api-extract" && try(e.auth, null) != null
    ]))
  }
  uses_oauth = { for k, auths in local.pipeline_rest_auths : k => contains(auths, "oauth2_client_credentials") }

  settings = {
    for k, p in var.pipelines : k => {
      pipeline = k
      # The pipeline keyed var.project keeps the single-pipeline names; the others are
      # <project>-<pipeline>-... .
      primary = k == var.project
      name    = coalesce(p.name_prefix, k == var.project ? var.project : "${var.project}-${k}")

      glue_database_name = local.glue_database_names[k]
      # Redshift schemas: today's variables for the primary pipeline, <pipeline>_<layer> (with
      # "-" as "_", a plain Redshift identifier) for the others.
      external_schema = coalesce(p.external_schema, k == var.project ? var.defaults.external_schema : "${replace(k, "-", "_")}_transform")
      serving_schema  = coalesce(p.serving_schema, k == var.project ? var.defaults.serving_schema : "${replace(k, "-", "_")}_serving")
      bi_schema       = coalesce(p.bi_schema, k == var.project ? var.defaults.bi_schema : "${replace(k, "-", "_")}_bi")

      extracts = try(local.deploy[k].extracts, [])
      # The landing folders (full keys in the bucket) each extract function writes for this
      # pipeline: its write permission.
      extract_landing = {
        for f in local.extract_functions : f => [
          for e in try(local.deploy[k].extracts, []) : "${var.lake_key_prefix}${e.landing_prefix}" if e.function == f
        ]
      }
      # Where songs-extract keeps the watermarks of incremental SQL sources (full key prefix).
      state_prefix = "${var.lake_key_prefix}state/${try(local.deploy[k].name, k)}/"
      # The extract functions its extracts call: only these are deployed for the pipeline.
      extract_functions = sort(distinct([for e in try(local.deploy[k].extracts, []) : e.function]))
      # The engines of its SQL extracts: the connections its songs-extract needs (PG_* for
      # postgres, MYSQL_* for mysql), and only these. An extract without "engine" (a deploy.json
      # generated before MySQL sources) is PostgreSQL.
      sql_engines = sort(distinct([
        for e in try(local.deploy[k].extracts, []) : try(e.engine, null) != null ? e.engine : "postgres" if e.function == "songs-extract"
      ]))
      # The authentication of its REST extracts: the OAUTH_* settings its api-extract gets, and
      # the client secret it may read, only with "oauth2_client_credentials".
      rest_auths = local.pipeline_rest_auths[k]
      tables     = try(local.deploy[k].tables, [])
      # Full keys in the bucket: the pipeline's transform receives the objects created below these.
      landing_prefixes = [for prefix in try(local.deploy[k].landing_prefixes, []) : "${var.lake_key_prefix}${prefix}"]
      # dbt project of the pipeline, relative to the repository root (and to /dbt in the image).
      dbt_project_dir = try(local.deploy[k].dbt_project_dir, "")
      dbt_command = [
        "build", "--target", "redshift",
        "--project-dir", "/dbt/${try(local.deploy[k].dbt_project_dir, "")}",
        "--profiles-dir", "/dbt/${try(local.deploy[k].dbt_project_dir, "")}",
      ]

      # A pipeline with an OAuth REST source takes only its own api_base_url: the top-level one is
      # the DeFtunes API (or the demo source), and its bearer token goes to this URL.
      api_base_url     = p.api_base_url != null ? p.api_base_url : (local.uses_oauth[k] ? null : var.defaults.api_base_url)
      pg_host          = p.pg_host != null ? p.pg_host : var.defaults.pg_host
      pg_port          = coalesce(p.pg_port, var.defaults.pg_port)
      pg_database      = coalesce(p.pg_database, var.defaults.pg_database)
      pg_user          = coalesce(p.pg_user, var.defaults.pg_user)
      pg_secret_arn    = p.pg_secret_arn != null ? p.pg_secret_arn : var.defaults.pg_secret_arn
      pg_sslmode       = coalesce(p.pg_sslmode, var.defaults.pg_sslmode)
      mysql_host       = p.mysql_host != null ? p.mysql_host : var.defaults.mysql_host
      mysql_port       = coalesce(p.mysql_port, var.defaults.mysql_port)
      mysql_database   = p.mysql_database != null ? p.mysql_database : var.defaults.mysql_database
      mysql_user       = coalesce(p.mysql_user, var.defaults.mysql_user)
      mysql_secret_arn = p.mysql_secret_arn != null ? p.mysql_secret_arn : var.defaults.mysql_secret_arn
      mysql_sslmode    = coalesce(p.mysql_sslmode, var.defaults.mysql_sslmode)
      # OAuth 2.0 client credentials of its REST sources with that "auth" (OAUTH_* of api-extract,
      # set only for such a pipeline), and the longest Retry-After api-extract waits out (null:
      # API_RETRY_AFTER_MAX_SECS not set, the function's default).
      oauth_token_url          = p.oauth_token_url != null ? p.oauth_token_url : var.defaults.oauth_token_url
      oauth_client_id          = p.oauth_client_id != null ? p.oauth_client_id : var.defaults.oauth_client_id
      oauth_client_secret_arn  = p.oauth_client_secret_arn != null ? p.oauth_client_secret_arn : var.defaults.oauth_client_secret_arn
      oauth_scope              = p.oauth_scope != null ? p.oauth_scope : var.defaults.oauth_scope
      oauth_secret_kms_key_arn = p.oauth_secret_kms_key_arn != null ? p.oauth_secret_kms_key_arn : var.defaults.oauth_secret_kms_key_arn
      api_retry_after_max_secs = p.api_retry_after_max_secs != null ? p.api_retry_after_max_secs : var.defaults.api_retry_after_max_secs
      # SONGS_TABLE overrides the pipeline's one SQL table source: the top-level value is the
      # primary pipeline's only (songs-extract refuses it for a pipeline with several table
      # sources, such as classicmodels); null leaves the spec's table.
      songs_table              = p.songs_table != null ? p.songs_table : (k == var.project ? var.defaults.songs_table : null)
      songs_subnet_ids         = p.songs_subnet_ids != null ? p.songs_subnet_ids : var.defaults.songs_subnet_ids
      songs_security_group_ids = p.songs_security_group_ids != null ? p.songs_security_group_ids : var.defaults.songs_security_group_ids
      schedule_enabled         = p.schedule_enabled != null ? p.schedule_enabled : var.defaults.schedule_enabled
      schedule_expression      = coalesce(p.schedule_expression, var.defaults.schedule_expression)

      # Windows of a run processed at the same time (the windows' Distributed Map), and where
      # that map writes each run's results (full key prefix, no trailing "/": ResultWriter adds
      # /<map run id>/). Outside the zones: no function reads or writes it.
      backfill_max_concurrency = coalesce(p.backfill_max_concurrency, var.defaults.backfill_max_concurrency)
      map_results_prefix       = "${var.lake_key_prefix}reports/map-results/${k}"

      # run-control: the most windows a scheduled run catches up (CATCH_UP_MAX_WINDOWS), and
      # where each execution's run report goes (full key prefix, no trailing "/": the function
      # writes <prefix>/<execution name>/report.json and report.html).
      catch_up_max_windows = coalesce(p.catch_up_max_windows, var.defaults.catch_up_max_windows)
      reports_prefix       = "${var.lake_key_prefix}reports/runs/${k}"
      # The same two places relative to the lake (LAKE_URI already ends with the lake prefix):
      # run-control's REPORTS_PREFIX, and STATE_PREFIX, the folder of state_prefix where
      # songs-extract keeps its watermarks and run-control the catch-up frontier.
      run_control_prefixes = {
        reports = "reports/runs/${k}"
        state   = "state/${try(local.deploy[k].name, k)}"
      }

      # Athena named queries of the pipeline (pipelines/<key>/athena/*.sql), by file name without
      # ".sql": their SQL over the pipeline's Glue database.
      athena_queries = {
        for f in local.athena_files[k] : trimsuffix(f, ".sql") => templatefile("${var.pipelines_dir}/${k}/athena/${f}", {
          database = local.glue_database_names[k]
          pipeline = k
        })
      }
    }
  }

  glue_databases = [for s in values(local.settings) : s.glue_database_name]
  schemas        = flatten([for s in values(local.settings) : [s.external_schema, s.serving_schema, s.bi_schema]])
  names          = [for s in values(local.settings) : s.name]

  # Every (pipeline, its prefix, other pipeline, its prefix) where one prefix starts with the
  # other: both rules would match the object, and two transforms would commit it.
  overlapping_prefixes = flatten([
    for a, sa in local.settings : [
      for b, sb in local.settings : [
        for pa in sa.landing_prefixes : [
          for pb in sb.landing_prefixes : "${a} (${pa}) and ${b} (${pb})" if startswith(pa, pb)
        ]
      ] if a != b
    ]
  ])

  # A landing prefix is a folder ("/"-terminated): a permission on "<prefix>*" stays inside it.
  unterminated_prefixes = sort(flatten([for k, s in local.settings : [for p in s.landing_prefixes : "${k}: ${p}" if !endswith(p, "/")]]))

  missing_deploy = sort([for k, d in local.deploy : k if d == null])
  unknown_functions = sort(distinct(flatten([
    for k, s in local.settings : [for f in s.extract_functions : "${k}: ${f}" if !contains(local.extract_functions, f)]
  ])))
  # Sources the pipeline cannot reach with what it was given.
  without_api   = sort([for k, s in local.settings : k if contains(s.extract_functions, "api-extract") && s.api_base_url == null && !local.uses_oauth[k]])
  without_pg    = sort([for k, s in local.settings : k if contains(s.sql_engines, "postgres") && (s.pg_host == null || s.pg_secret_arn == null)])
  without_mysql = sort([for k, s in local.settings : k if contains(s.sql_engines, "mysql") && (s.mysql_host == null || s.mysql_secret_arn == null)])
  unknown_engines = sort(distinct(flatten([
    for k, s in local.settings : [for e in s.sql_engines : "${k}: ${e}" if !contains(local.sql_engines, e)]
  ])))
  unknown_auths = sort(distinct(flatten([
    for k, s in local.settings : [for a in s.rest_auths : "${k}: ${a}" if !contains(local.rest_auths, a)]
  ])))
  # OAuth pipelines: their own api_base_url, and the client credentials (here or top-level);
  # both URLs https (the client secret goes to the token URL, the bearer token to the API).
  oauth_pipelines   = sort([for k, s in local.settings : k if local.uses_oauth[k]])
  oauth_without_api = [for k in local.oauth_pipelines : k if local.settings[k].api_base_url == null || local.settings[k].api_base_url == ""]
  oauth_missing = flatten([
    for k in local.oauth_pipelines : [
      for name in ["oauth_token_url", "oauth_client_id", "oauth_client_secret_arn"] : "${k}: ${name}" if local.settings[k][name] == null || local.settings[k][name] == ""
    ]
  ])
  without_oauth = distinct([for m in local.oauth_missing : split(": ", m)[0]])
  oauth_insecure = flatten([
    for k in local.oauth_pipelines : [
      for name in ["oauth_token_url", "api_base_url"] : "${k}: ${name}" if !try(startswith(local.settings[k][name], "https://"), true)
    ]
  ])
  # Athena query names (file names): part of the named query's name, <prefix>-<name>.
  bad_athena_files = sort(flatten([for k, files in local.athena_files : [for f in files : "pipelines/${k}/athena/${f}" if !can(regex("^[a-z0-9][a-z0-9_-]*\\.sql$", f))]]))
  # A Redshift schema name (unquoted identifier).
  bad_schemas = sort([for n in local.schemas : n if !can(regex("^[a-z_][a-z0-9_]*$", n))])
}
