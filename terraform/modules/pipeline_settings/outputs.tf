output "pipelines" {
  description = "Settings of each pipeline, by key: names, Glue database, Redshift schemas, extracts and the extract functions they call, the engines of its SQL extracts, landing prefixes, dbt project and command, source and schedule settings, backfill concurrency, map results prefix and Athena queries."
  value       = local.settings

  precondition {
    condition     = length(local.missing_deploy) == 0
    error_message = "No readable pipelines/<name>/deploy.json for pipeline(s) ${join(", ", local.missing_deploy)}: a key of pipelines must be a folder under pipelines/ with its generated deploy.json."
  }

  precondition {
    condition     = length(local.unknown_functions) == 0
    error_message = "deploy.json extracts call unknown functions (${join(", ", local.unknown_functions)}): the extract functions are api-extract and songs-extract."
  }

  precondition {
    condition     = length(distinct(local.names)) == length(local.names)
    error_message = "Two pipelines would share a resource name prefix (${join(", ", local.names)}): set a distinct name_prefix."
  }

  precondition {
    condition     = length(distinct(local.glue_databases)) == length(local.glue_databases)
    error_message = "Two pipelines would share a Glue database (${join(", ", local.glue_databases)}): each pipeline's Iceberg tables need their own; set glue_database_name of one of them."
  }

  precondition {
    condition     = length(distinct(local.schemas)) == length(local.schemas)
    error_message = "Two Redshift schemas would be the same (external, serving and BI schemas of every pipeline: ${join(", ", local.schemas)}): set external_schema, serving_schema or bi_schema of a pipeline."
  }

  precondition {
    condition     = length(local.bad_schemas) == 0
    error_message = "Redshift schema names must be lower-case identifiers ([a-z_][a-z0-9_]*): ${join(", ", local.bad_schemas)}."
  }

  precondition {
    condition     = length(local.overlapping_prefixes) == 0
    error_message = "Landing prefixes of two pipelines overlap (one is a prefix of the other), so both transforms would receive the same objects: ${join("; ", local.overlapping_prefixes)}. Deploy only one of them, or give the pipelines distinct landing folders."
  }

  precondition {
    condition     = length(local.unterminated_prefixes) == 0
    error_message = "Landing prefixes must end with \"/\" (folders; deploy.json is generated that way): ${join(", ", local.unterminated_prefixes)}."
  }

  precondition {
    condition     = length(local.without_api) == 0
    error_message = "Pipeline(s) ${join(", ", local.without_api)} extract from a REST API: set api_base_url (top-level or the pipeline's), or deploy_demo_source = true."
  }

  precondition {
    condition     = length(local.unknown_engines) == 0
    error_message = "deploy.json SQL extracts name unknown engines (${join(", ", local.unknown_engines)}): songs-extract reads postgres and mysql."
  }

  precondition {
    condition     = length(local.without_pg) == 0
    error_message = "Pipeline(s) ${join(", ", local.without_pg)} extract from PostgreSQL: set pg_host and pg_secret_arn (top-level or the pipeline's)."
  }

  precondition {
    condition     = length(local.without_mysql) == 0
    error_message = "Pipeline(s) ${join(", ", local.without_mysql)} extract from MySQL: set mysql_host and mysql_secret_arn (top-level or the pipeline's)."
  }

  precondition {
    condition     = length(local.bad_athena_files) == 0
    error_message = "Athena query files must be named <name>.sql with a lower-case name ([a-z0-9][a-z0-9_-]*; it names the named query): ${join(", ", local.bad_athena_files)}."
  }
}
