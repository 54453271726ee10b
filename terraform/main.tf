data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition

  # cargo-lambda writes target/lambda/<crate>/bootstrap.zip at the repository root.
  lambda_artifacts_dir = coalesce(var.lambda_artifacts_dir, "${path.root}/../target/lambda")

  bucket_name = coalesce(var.lake_bucket_name, "${var.project}-lake-${local.account_id}-${local.region}")
  bucket_arn  = module.data_lake.bucket_arn
  zones       = module.data_lake.zone_prefixes

  schedule_expression = coalesce(
    var.schedule_expression,
    var.window_granularity == "month" ? "cron(30 1 1 * ? *)" : "cron(30 1 * * ? *)",
  )

  # The DeFtunes API, else the demo source's function URL, else null (then a pipeline with a
  # REST source needs its own api_base_url: a precondition of modules/pipeline_settings). Not the
  # default of a pipeline with an OAuth REST source: it takes only its own.
  api_base_url = var.api_base_url != null ? var.api_base_url : one(aws_lambda_function_url.demo_source[*].function_url)

  # What each pipeline deploys: var.pipelines resolved against its deploy.json and the defaults.
  pipelines = module.pipeline_settings.pipelines
}

# ================================================================ data lake
module "data_lake" {
  source = "./modules/data_lake"

  bucket_name                    = local.bucket_name
  lake_prefix                    = var.lake_prefix
  kms_key_arn                    = var.lake_kms_key_arn
  landing_expiration_days        = var.landing_expiration_days
  athena_results_expiration_days = var.athena_results_expiration_days
  force_destroy                  = var.lake_force_destroy
}

# ================================================================ pipelines
# Each pipeline's settings (pipelines/<key>/deploy.json, its overrides, the top-level defaults)
# and the checks that keep pipelines apart: names, Glue databases, Redshift schemas and landing
# prefixes distinct. No provider: terraform/tests plans it offline.
module "pipeline_settings" {
  source = "./modules/pipeline_settings"

  project         = var.project
  pipelines       = var.pipelines
  pipelines_dir   = "${path.root}/../pipelines"
  lake_key_prefix = module.data_lake.key_prefix

  defaults = {
    api_base_url             = local.api_base_url
    pg_host                  = var.pg_host
    pg_port                  = var.pg_port
    pg_database              = var.pg_database
    pg_user                  = var.pg_user
    pg_secret_arn            = var.pg_secret_arn
    pg_sslmode               = var.pg_sslmode
    mysql_host               = var.mysql_host
    mysql_port               = var.mysql_port
    mysql_database           = var.mysql_database
    mysql_user               = var.mysql_user
    mysql_secret_arn         = var.mysql_secret_arn
    mysql_sslmode            = var.mysql_sslmode
    oauth_token_url          = var.oauth_token_url
    oauth_client_id          = var.oauth_client_id
    oauth_client_secret_arn  = var.oauth_client_secret_arn
    oauth_scope              = var.oauth_scope
    oauth_secret_kms_key_arn = var.oauth_secret_kms_key_arn
    api_retry_after_max_secs = var.api_retry_after_max_secs
    songs_table              = var.songs_table
    songs_subnet_ids         = var.songs_subnet_ids
    songs_security_group_ids = var.songs_security_group_ids
    external_schema          = var.external_schema
    serving_schema           = var.serving_schema
    bi_schema                = var.bi_schema
    schedule_enabled         = var.schedule_enabled
    schedule_expression      = local.schedule_expression
    backfill_max_concurrency = var.backfill_max_concurrency
    catch_up_max_windows     = var.catch_up_max_windows
  }
}

# One instance per pipeline: its Glue database, functions (the same zips; PIPELINE=<key>),
# orchestration and dbt task definition.
module "pipeline" {
  source   = "./modules/pipeline"
  for_each = var.pipelines

  settings = local.pipelines[each.key]

  lambda_artifacts_dir = local.lambda_artifacts_dir
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  window_granularity   = var.window_granularity
  xray_tracing         = var.xray_tracing
  schedule_timezone    = var.schedule_timezone

  bucket_name              = module.data_lake.bucket_name
  bucket_arn               = local.bucket_arn
  lake_uri                 = module.data_lake.lake_uri
  zones                    = local.zones
  lake_kms_key_arn         = var.lake_kms_key_arn
  pg_secret_kms_key_arn    = var.pg_secret_kms_key_arn
  mysql_secret_kms_key_arn = var.mysql_secret_kms_key_arn
  enable_table_optimizers  = var.enable_table_optimizers

  redshift_workgroup_name   = module.serving.workgroup_name
  redshift_workgroup_arn    = module.serving.workgroup_arn
  redshift_database         = module.serving.database_name
  redshift_admin_secret_arn = module.serving.admin_secret_arn
  redshift_endpoint_address = module.serving.endpoint_address
  redshift_endpoint_port    = module.serving.endpoint_port
  spectrum_role_arn         = module.serving.spectrum_role_arn
  analysts_role             = var.analysts_role

  ecr_repository_url            = module.serving.ecr_repository_url
  ecr_repository_arn            = module.serving.ecr_repository_arn
  ecs_cluster_arn               = module.serving.ecs_cluster_arn
  dbt_image                     = var.dbt_image
  dbt_image_tag                 = var.dbt_image_tag
  dbt_cpu_architecture          = var.dbt_cpu_architecture
  dbt_read_only_root_filesystem = var.dbt_read_only_root_filesystem
  dbt_subnet_ids                = coalesce(var.dbt_subnet_ids, var.redshift_subnet_ids)
  dbt_security_group_ids        = var.dbt_security_group_ids
  dbt_assign_public_ip          = var.dbt_assign_public_ip

  transform_batch_size      = var.transform_batch_size
  transform_max_concurrency = var.transform_max_concurrency

  orphan_files_cleanup_enabled     = var.orphan_files_cleanup_enabled
  orphan_files_schedule_expression = var.orphan_files_schedule_expression
  orphan_files_older_than_hours    = var.orphan_files_older_than_hours
}

# ================================================================ demo source (opt-in)
# functions/api-emulator: the local stack's API emulator, serving synthetic users and sessions
# generated at cold start (DATA_* defaults: the same data as `deftunes load-songs` / `run` with
# their defaults). Only with deploy_demo_source = true, for accounts without the DeFtunes API.
module "api_emulator" {
  source = "./modules/lambda_function"
  count  = var.deploy_demo_source ? 1 : 0

  function_name      = "${var.project}-api-emulator"
  description        = "Synthetic DeFtunes API (GET /users, /sessions) behind a function URL, for demo accounts."
  package_path       = "${local.lambda_artifacts_dir}/api-emulator/bootstrap.zip"
  memory_size        = 512
  timeout            = 60
  log_retention_days = var.log_retention_days
  log_level          = var.log_level
  xray_tracing       = var.xray_tracing
  # The URL is public: reserved concurrency caps the invocations (and the bill) it can cause.
  reserved_concurrent_executions = var.demo_source_reserved_concurrency

  environment = {}
}

# Public (no authentication): it serves generated data only and cannot change state (no fault
# control route). Streamed responses: a month of sessions is larger than the 6 MB a buffered
# function URL response may hold. With authorization_type NONE the provider (>= 6.29) adds the
# two resource-policy statements a public URL needs (lambda:InvokeFunctionUrl with
# FunctionUrlAuthType NONE, lambda:InvokeFunction with InvokedViaFunctionUrl).
resource "aws_lambda_function_url" "demo_source" {
  count = var.deploy_demo_source ? 1 : 0

  function_name      = module.api_emulator[0].function_name
  authorization_type = "NONE"
  invoke_mode        = "RESPONSE_STREAM"
}

# ================================================================ serving (shared)
module "serving" {
  source = "./modules/serving"

  name               = var.project
  database_name      = var.redshift_database
  base_capacity      = var.redshift_base_capacity
  max_capacity       = var.redshift_max_capacity
  subnet_ids         = var.redshift_subnet_ids
  security_group_ids = var.redshift_security_group_ids
  # The Spectrum role reads every pipeline's Glue database.
  glue_databases   = [for k in sort(keys(var.pipelines)) : local.pipelines[k].glue_database_name]
  bucket_arn       = local.bucket_arn
  warehouse_prefix = local.zones["transform_zone"]
  kms_key_arn      = var.lake_kms_key_arn
}

# ================================================================ operations (shared)
# Alarms to an SNS topic (alarm_email subscribes an address), one dashboard per pipeline, and an
# Athena workgroup with named queries over each pipeline's Iceberg tables. The functions write
# the DeFtunes metrics (CloudWatch Embedded Metric Format) that the data alarms read.
module "operations" {
  source = "./modules/operations"

  name = var.project
  pipelines = {
    for k, p in module.pipeline : k => {
      name              = local.pipelines[k].name
      glue_database     = p.glue_database
      tables            = local.pipelines[k].tables
      athena_queries    = local.pipelines[k].athena_queries
      sources           = [for e in local.pipelines[k].extracts : e.source]
      function_names    = p.function_names
      state_machine_arn = p.state_machine_arn
      dead_letter_queues = {
        transform   = p.transform_dlq_name
        maintenance = p.maintenance_dlq_name
      }
    }
  }
  # The demo source is no pipeline's: its errors and throttles alarm too.
  functions = { for m in module.api_emulator : "api-emulator" => m.function_name }

  alarm_email                    = var.alarm_email
  quarantine_rate_threshold      = var.quarantine_rate_threshold
  quarantine_rate_period_seconds = var.quarantine_rate_period_seconds

  bucket_name                           = module.data_lake.bucket_name
  athena_results_prefix                 = module.data_lake.athena_results_prefix
  lake_kms_key_arn                      = var.lake_kms_key_arn
  athena_bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff_per_query
}
