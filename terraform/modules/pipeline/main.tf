# One pipeline: pipelines/<pipeline> (var.settings, resolved by modules/pipeline_settings from
# var.pipelines and the pipeline's deploy.json). Its Glue database, its functions (the same
# binaries as every pipeline, PIPELINE=<pipeline> choosing the spec bundled in the zip), its
# orchestration and its dbt task; the lake, Redshift, ECR and ECS are shared (root module).

locals {
  bucket_arn = var.bucket_arn
  zones      = var.zones

  # Extract functions the pipeline's deploy.json extracts call: only these are deployed.
  deploy_api_extract   = contains(var.settings.extract_functions, "api-extract")
  deploy_songs_extract = contains(var.settings.extract_functions, "songs-extract")
  # The engines of its SQL sources: songs-extract gets the connection settings (PG_*, MYSQL_*)
  # and the secret of these only.
  uses_postgres = contains(var.settings.sql_engines, "postgres")
  uses_mysql    = contains(var.settings.sql_engines, "mysql")
  # Its REST sources with "auth": "oauth2_client_credentials": api-extract gets the OAUTH_*
  # settings and the client secret, only then.
  uses_oauth = contains(var.settings.rest_auths, "oauth2_client_credentials")

  function_arns = merge(
    {
      "transform"      = module.transform.function_arn
      "redshift-setup" = module.redshift_setup.function_arn
      "run-control"    = module.run_control.function_arn
    },
    { for m in module.api_extract : "api-extract" => m.function_arn },
    { for m in module.songs_extract : "songs-extract" => m.function_arn },
  )
}

# ================================================================ catalog (silver layer)
module "catalog" {
  source = "../catalog"

  # The spec's namespace unless overridden: the Iceberg namespace of transform.
  database_name           = var.settings.glue_database_name
  bucket_name             = var.bucket_name
  bucket_arn              = local.bucket_arn
  warehouse_prefix        = local.zones["transform_zone"]
  enable_table_optimizers = var.enable_table_optimizers
  optimized_tables        = var.settings.tables
  kms_key_arn             = var.lake_kms_key_arn
}

# ================================================================ functions
module "api_extract" {
  source = "../lambda_function"
  # Only for a pipeline whose deploy.json has a REST source.
  count = local.deploy_api_extract ? 1 : 0

  function_name = "${var.settings.name}-api-extract"
  description   = "Extracts the REST sources of pipeline ${var.settings.pipeline} of a window into the landing zone."
  package_path  = "${var.lambda_artifacts_dir}/api-extract/bootstrap.zip"
  memory_size   = 512
  timeout       = 900
  # Parts of up to PART_MAX_BYTES are spooled in /tmp before upload.
  ephemeral_storage_size = 1024
  log_retention_days     = var.log_retention_days
  log_level              = var.log_level
  xray_tracing           = var.xray_tracing

  environment = {
    LAKE_URI           = var.lake_uri
    API_BASE_URL       = var.settings.api_base_url
    WINDOW_GRANULARITY = var.window_granularity
    # The schedule fires in schedule_timezone but passes scheduled_time in UTC: the previous
    # day/month is taken in the schedule's calendar.
    WINDOW_TIMEZONE  = var.schedule_timezone
    API_TIMEOUT_SECS = "30"
    API_MAX_ATTEMPTS = "5"
    PART_MAX_BYTES   = "67108864"
    SPOOL_DIR        = "/tmp"
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its REST sources.
    PIPELINE = var.settings.pipeline
  }

  # Left out where null. OAUTH_* only for a pipeline with an OAuth REST source: the client
  # secret is read from Secrets Manager (OAUTH_CLIENT_SECRET_ARN); OAUTH_CLIENT_SECRET is for
  # local runs only and never set here. API_RETRY_AFTER_MAX_SECS only when configured.
  optional_environment = {
    OAUTH_TOKEN_URL          = local.uses_oauth ? var.settings.oauth_token_url : null
    OAUTH_CLIENT_ID          = local.uses_oauth ? var.settings.oauth_client_id : null
    OAUTH_CLIENT_SECRET_ARN  = local.uses_oauth ? var.settings.oauth_client_secret_arn : null
    OAUTH_SCOPE              = local.uses_oauth ? var.settings.oauth_scope : null
    API_RETRY_AFTER_MAX_SECS = var.settings.api_retry_after_max_secs != null ? tostring(var.settings.api_retry_after_max_secs) : null
  }

  policy_statements = concat(
    local.function_statements["api-extract"],
    local.oauth_secret_statements,
    local.oauth_secret_kms_statements,
    local.lake_kms_statements,
  )
}

module "songs_extract" {
  source = "../lambda_function"
  # Only for a pipeline whose deploy.json has a SQL source.
  count = local.deploy_songs_extract ? 1 : 0

  function_name          = "${var.settings.name}-songs-extract"
  description            = "Extracts the SQL sources of pipeline ${var.settings.pipeline} into the landing zone."
  package_path           = "${var.lambda_artifacts_dir}/songs-extract/bootstrap.zip"
  memory_size            = 512
  timeout                = 900
  ephemeral_storage_size = 1024
  log_retention_days     = var.log_retention_days
  log_level              = var.log_level
  xray_tracing           = var.xray_tracing

  vpc_subnet_ids         = var.settings.songs_subnet_ids
  vpc_security_group_ids = var.settings.songs_security_group_ids

  environment = {
    LAKE_URI       = var.lake_uri
    PART_MAX_BYTES = "67108864"
    SPOOL_DIR      = "/tmp"
    # A scheduled run lands under the schedule's local date (ingest_on).
    WINDOW_TIMEZONE = var.schedule_timezone
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its SQL sources.
    PIPELINE = var.settings.pipeline
  }

  # Left out where null. The connection settings of the engines its SQL sources use, and only
  # these: PG_* with a PostgreSQL source, MYSQL_* with a MySQL one. Passwords are read from
  # Secrets Manager at start-up (PG_SECRET_ARN, MYSQL_SECRET_ARN); PG_PASSWORD and
  # MYSQL_PASSWORD are for local runs only and never set here.
  optional_environment = {
    PG_HOST                    = local.uses_postgres ? var.settings.pg_host : null
    PG_PORT                    = local.uses_postgres ? tostring(var.settings.pg_port) : null
    PG_DATABASE                = local.uses_postgres ? var.settings.pg_database : null
    PG_USER                    = local.uses_postgres ? var.settings.pg_user : null
    PG_SECRET_ARN              = local.uses_postgres ? var.settings.pg_secret_arn : null
    PG_SSLMODE                 = local.uses_postgres ? var.settings.pg_sslmode : null
    PG_CONNECT_TIMEOUT_SECS    = local.uses_postgres ? "10" : null
    MYSQL_HOST                 = local.uses_mysql ? var.settings.mysql_host : null
    MYSQL_PORT                 = local.uses_mysql ? tostring(var.settings.mysql_port) : null
    MYSQL_DATABASE             = local.uses_mysql ? var.settings.mysql_database : null
    MYSQL_USER                 = local.uses_mysql ? var.settings.mysql_user : null
    MYSQL_SECRET_ARN           = local.uses_mysql ? var.settings.mysql_secret_arn : null
    MYSQL_SSLMODE              = local.uses_mysql ? var.settings.mysql_sslmode : null
    MYSQL_CONNECT_TIMEOUT_SECS = local.uses_mysql ? "10" : null
    # Set only with a songs_table: null leaves the spec's table.
    SONGS_TABLE = var.settings.songs_table
  }

  policy_statements = concat(
    local.function_statements["songs-extract"],
    local.pg_secret_statements,
    local.mysql_secret_statements,
    local.pg_secret_kms_statements,
    local.mysql_secret_kms_statements,
    local.lake_kms_statements,
  )
}

module "transform" {
  source = "../lambda_function"

  function_name      = "${var.settings.name}-transform"
  description        = "Commits landing objects of pipeline ${var.settings.pipeline} to its Iceberg silver tables (Glue catalog) with data quality."
  package_path       = "${var.lambda_artifacts_dir}/transform/bootstrap.zip"
  memory_size        = 2048
  timeout            = 900
  log_retention_days = var.log_retention_days
  log_level          = var.log_level
  xray_tracing       = var.xray_tracing

  environment = {
    LAKE_URI          = var.lake_uri
    CATALOG           = "glue"
    ICEBERG_WAREHOUSE = module.catalog.warehouse_uri
    ICEBERG_NAMESPACE = module.catalog.database_name
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its tables and rules.
    PIPELINE = var.settings.pipeline
  }

  policy_statements = concat(local.function_statements["transform"], local.lake_kms_statements)
}

# Redshift setup (functions/redshift-setup): the pipeline's schemas, analysts role and grants,
# idempotently.
module "redshift_setup" {
  source = "../lambda_function"

  function_name      = "${var.settings.name}-redshift-setup"
  description        = "Creates the Redshift external, serving and BI schemas of pipeline ${var.settings.pipeline} and grants, idempotently."
  package_path       = "${var.lambda_artifacts_dir}/redshift-setup/bootstrap.zip"
  memory_size        = 256
  timeout            = 900
  log_retention_days = var.log_retention_days
  log_level          = var.log_level
  xray_tracing       = var.xray_tracing

  environment = {
    REDSHIFT_WORKGROUP     = var.redshift_workgroup_name
    REDSHIFT_DATABASE      = var.redshift_database
    REDSHIFT_SECRET_ARN    = var.redshift_admin_secret_arn
    GLUE_DATABASE          = module.catalog.database_name
    SPECTRUM_ROLE_ARN      = var.spectrum_role_arn
    EXTERNAL_SCHEMA        = var.settings.external_schema
    SERVING_SCHEMA         = var.settings.serving_schema
    BI_SCHEMA              = var.settings.bi_schema
    ANALYSTS_ROLE          = var.analysts_role
    STATEMENT_TIMEOUT_SECS = "300"
  }

  policy_statements = local.redshift_data_statements["redshift-setup"]
}

# Run control (functions/run-control), called by the state machine: plans the windows a
# scheduled run catches up, and writes each execution's run report (JSON and HTML) and, after a
# successful one, the catch-up frontier.
module "run_control" {
  source = "../lambda_function"

  function_name      = "${var.settings.name}-run-control"
  description        = "Plans the catch-up windows of scheduled runs of pipeline ${var.settings.pipeline} and writes each execution's run report."
  package_path       = "${var.lambda_artifacts_dir}/run-control/bootstrap.zip"
  memory_size        = 512
  timeout            = 300
  log_retention_days = var.log_retention_days
  log_level          = var.log_level
  xray_tracing       = var.xray_tracing

  environment = {
    # The lake and the catalog as transform reads them: a report counts the rows of its tables.
    LAKE_URI          = var.lake_uri
    CATALOG           = "glue"
    ICEBERG_WAREHOUSE = module.catalog.warehouse_uri
    ICEBERG_NAMESPACE = module.catalog.database_name
    PIPELINE          = var.settings.pipeline
    # A scheduled run's own period, as the extracts derive it from scheduled_time.
    WINDOW_GRANULARITY   = var.window_granularity
    WINDOW_TIMEZONE      = var.schedule_timezone
    CATCH_UP_MAX_WINDOWS = tostring(var.settings.catch_up_max_windows)
    # Relative to LAKE_URI.
    REPORTS_PREFIX = var.settings.run_control_prefixes.reports
    STATE_PREFIX   = var.settings.run_control_prefixes.state
    # The report draws the pipeline spec's [[report.charts]] from the BI views dbt built, queried
    # through the Redshift Data API with the admin secret, in the warehouse redshift-setup uses.
    REDSHIFT_WORKGROUP  = var.redshift_workgroup_name
    REDSHIFT_DATABASE   = var.redshift_database
    REDSHIFT_SECRET_ARN = var.redshift_admin_secret_arn
    SERVING_SCHEMA      = var.settings.serving_schema
    BI_SCHEMA           = var.settings.bi_schema
    # Limit of each chart statement; the report runs them concurrently, well within timeout.
    CHART_TIMEOUT_SECS = "60"
  }

  policy_statements = concat(
    local.function_statements["run-control"],
    local.redshift_data_statements["run-control"],
    local.map_results_read_statements,
    local.lake_kms_statements,
  )
}

# ================================================================ dbt task (shared image)
module "dbt_task" {
  source = "../dbt_task"

  name               = var.settings.name
  ecr_repository_url = var.ecr_repository_url
  ecr_repository_arn = var.ecr_repository_arn
  redshift_host      = var.redshift_endpoint_address
  redshift_port      = var.redshift_endpoint_port
  database_name      = var.redshift_database
  admin_secret_arn   = var.redshift_admin_secret_arn
  # The schemas redshift-setup creates and grants.
  external_schema      = var.settings.external_schema
  serving_schema       = var.settings.serving_schema
  bi_schema            = var.settings.bi_schema
  dbt_image            = var.dbt_image
  dbt_image_tag        = var.dbt_image_tag
  dbt_cpu_architecture = var.dbt_cpu_architecture
  # The pipeline's dbt project in the image: /dbt/<deploy.json dbt_project_dir>.
  dbt_command = var.settings.dbt_command
  # Read-only root filesystem for the dbt container (bind mounts for target/ and logs/).
  dbt_read_only_root_filesystem = var.dbt_read_only_root_filesystem
  log_retention_days            = var.log_retention_days
}

# ================================================================ orchestration
module "orchestration" {
  source = "../orchestration"

  name          = var.settings.name
  function_arns = local.function_arns

  # One Extract -> Transform branch per source of pipelines/<pipeline>/deploy.json (none: a
  # files-only pipeline).
  extracts = var.settings.extracts
  # The windows' Distributed Map: child executions at a time, and where it writes its results
  # (reports/map-results/<pipeline>, encrypted with the lake's key when it has one).
  backfill_max_concurrency = var.settings.backfill_max_concurrency
  map_results_prefix       = var.settings.map_results_prefix
  kms_key_arn              = var.lake_kms_key_arn

  bucket_name = var.bucket_name
  # The transform queue receives the objects created below the pipeline's own landing prefixes.
  landing_prefixes          = var.settings.landing_prefixes
  transform_timeout         = 900
  transform_batch_size      = var.transform_batch_size
  transform_max_concurrency = var.transform_max_concurrency

  ecs_cluster_arn            = var.ecs_cluster_arn
  dbt_task_definition_arn    = module.dbt_task.task_definition_arn
  dbt_task_definition_family = module.dbt_task.task_definition_family
  dbt_container_name         = module.dbt_task.container_name
  dbt_role_arns              = module.dbt_task.role_arns
  dbt_subnet_ids             = var.dbt_subnet_ids
  dbt_security_group_ids     = var.dbt_security_group_ids
  dbt_assign_public_ip       = var.dbt_assign_public_ip

  schedule_enabled    = var.settings.schedule_enabled
  schedule_expression = var.settings.schedule_expression
  schedule_timezone   = var.schedule_timezone
  log_retention_days  = var.log_retention_days
  # X-Ray traces of the executions (and of the functions: xray_tracing above).
  xray_tracing = var.xray_tracing

  # Table maintenance: transform's remove_orphan_files on its own schedule.
  orphan_files_cleanup_enabled     = var.orphan_files_cleanup_enabled
  orphan_files_schedule_expression = var.orphan_files_schedule_expression
  orphan_files_older_than_hours    = var.orphan_files_older_than_hours
}
