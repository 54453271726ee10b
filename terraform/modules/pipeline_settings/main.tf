# Resolves var.pipelines against each pipeline's deploy.json (generated from its pipeline.toml)
# and the top-level defaults: one settings object per pipeline, which modules/pipeline deploys.
# The checks that keep pipelines apart (names, Glue databases, Redshift schemas, landing
# prefixes) are preconditions of the output, so a bad configuration fails the plan.

locals {
  # null where pipelines/<key>/deploy.json is missing or not JSON (a precondition says so).
  deploy = { for k, _ in var.pipelines : k => try(jsondecode(file("${var.pipelines_dir}/${k}/deploy.json")), null) }

  extract_functions = ["api-extract", "songs-extract"]

  settings = {
    for k, p in var.pipelines : k => {
      pipeline = k
      # The pipeline keyed var.project keeps the single-pipeline names; the others are
      # <project>-<pipeline>-... .
      primary = k == var.project
      name    = coalesce(p.name_prefix, k == var.project ? var.project : "${var.project}-${k}")

      # The Iceberg namespace is the spec's, unless overridden.
      glue_database_name = coalesce(p.glue_database_name, try(local.deploy[k].namespace, k))
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
      tables            = try(local.deploy[k].tables, [])
      # Full keys in the bucket: the pipeline's transform receives the objects created below these.
      landing_prefixes = [for prefix in try(local.deploy[k].landing_prefixes, []) : "${var.lake_key_prefix}${prefix}"]
      # dbt project of the pipeline, relative to the repository root (and to /dbt in the image).
      dbt_project_dir = try(local.deploy[k].dbt_project_dir, "")
      dbt_command = [
        "build", "--target", "redshift",
        "--project-dir", "/dbt/${try(local.deploy[k].dbt_project_dir, "")}",
        "--profiles-dir", "/dbt/${try(local.deploy[k].dbt_project_dir, "")}",
      ]

      api_base_url             = p.api_base_url != null ? p.api_base_url : var.defaults.api_base_url
      pg_host                  = p.pg_host != null ? p.pg_host : var.defaults.pg_host
      pg_port                  = coalesce(p.pg_port, var.defaults.pg_port)
      pg_database              = coalesce(p.pg_database, var.defaults.pg_database)
      pg_user                  = coalesce(p.pg_user, var.defaults.pg_user)
      pg_secret_arn            = p.pg_secret_arn != null ? p.pg_secret_arn : var.defaults.pg_secret_arn
      pg_sslmode               = coalesce(p.pg_sslmode, var.defaults.pg_sslmode)
      songs_table              = coalesce(p.songs_table, var.defaults.songs_table)
      songs_subnet_ids         = p.songs_subnet_ids != null ? p.songs_subnet_ids : var.defaults.songs_subnet_ids
      songs_security_group_ids = p.songs_security_group_ids != null ? p.songs_security_group_ids : var.defaults.songs_security_group_ids
      schedule_enabled         = p.schedule_enabled != null ? p.schedule_enabled : var.defaults.schedule_enabled
      schedule_expression      = coalesce(p.schedule_expression, var.defaults.schedule_expression)

      # Windows of a run processed at the same time (the windows' Distributed Map), and where
      # that map writes each run's results (full key prefix, no trailing "/": ResultWriter adds
      # /<map run id>/). Outside the zones: no function reads or writes it.
      backfill_max_concurrency = coalesce(p.backfill_max_concurrency, var.defaults.backfill_max_concurrency)
      map_results_prefix       = "${var.lake_key_prefix}reports/map-results/${k}"
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
  without_api = sort([for k, s in local.settings : k if contains(s.extract_functions, "api-extract") && s.api_base_url == null])
  without_pg  = sort([for k, s in local.settings : k if contains(s.extract_functions, "songs-extract") && (s.pg_host == null || s.pg_secret_arn == null)])
  # A Redshift schema name (unquoted identifier).
  bad_schemas = sort([for n in local.schemas : n if !can(regex("^[a-z_][a-z0-9_]*$", n))])
}
