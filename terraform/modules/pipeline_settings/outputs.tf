output "pipelines" {
  description = "Settings of each pipeline, by key: names, Glue database, Redshift schemas, extracts and the extract functions they call, the engines of its SQL extracts, the auth of its REST extracts, landing prefixes, dbt project and command, source settings (API, OAuth, databases), schedule settings, backfill concurrency, map results prefix, run-control's catch-up cap and report and state prefixes, and Athena queries."
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
    condition     = length(local.unknown_auths) == 0
    error_message = "deploy.json REST extracts name an unknown auth (${join(", ", local.unknown_auths)}): api-extract knows oauth2_client_credentials."
  }

  precondition {
    condition     = length(local.oauth_without_api) == 0
    error_message = "Pipeline(s) ${join(", ", local.oauth_without_api)} extract from a REST API with OAuth 2.0: set the pipeline's own api_base_url (its bearer token goes there; the top-level api_base_url and the demo source are the DeFtunes API's)."
  }

  precondition {
    condition     = length(local.without_oauth) == 0
    error_message = "Pipeline(s) ${join(", ", local.without_oauth)} extract from a REST API with OAuth 2.0 client credentials: set oauth_token_url, oauth_client_id and oauth_client_secret_arn (top-level or the pipeline's). Missing: ${join(", ", local.oauth_missing)}."
  }

  precondition {
    condition     = length(local.oauth_insecure) == 0
    error_message = "OAuth 2.0 URLs must be https:// (the client secret goes to the token URL, the bearer token to the API): ${join(", ", local.oauth_insecure)}."
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
