data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition

  # What the pipeline's spec wires (generated from pipelines/<pipeline>/pipeline.toml): its
  # extracts become the state machine's Parallel branches.
  pipeline_deploy = jsondecode(file("${path.root}/../pipelines/${var.pipeline}/deploy.json"))

  # cargo-lambda writes target/lambda/<crate>/bootstrap.zip at the repository root.
  lambda_artifacts_dir = coalesce(var.lambda_artifacts_dir, "${path.root}/../target/lambda")

  bucket_name = coalesce(var.lake_bucket_name, "${var.project}-lake-${local.account_id}-${local.region}")
  bucket_arn  = module.data_lake.bucket_arn
  zones       = module.data_lake.zone_prefixes

  schedule_expression = coalesce(
    var.schedule_expression,
    var.window_granularity == "month" ? "cron(30 1 1 * ? *)" : "cron(30 1 * * ? *)",
  )

  # The DeFtunes API, else the demo source's function URL (the validation of api_base_url
  # ensures one of them exists).
  api_base_url = coalesce(var.api_base_url, one(aws_lambda_function_url.demo_source[*].function_url))

  # kms statements appended to every role that reads or writes the lake.
  lake_kms_statements = var.lake_kms_key_arn == null ? [] : [{
    sid        = "LakeKey"
    actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources  = [var.lake_kms_key_arn]
    conditions = []
  }]
}

# ================================================================ data lake
module "data_lake" {
  source = "./modules/data_lake"

  bucket_name             = local.bucket_name
  lake_prefix             = var.lake_prefix
  kms_key_arn             = var.lake_kms_key_arn
  landing_expiration_days = var.landing_expiration_days
  force_destroy           = var.lake_force_destroy
}

# ================================================================ catalog (silver layer)
module "catalog" {
  source = "./modules/catalog"

  database_name           = var.glue_database_name
  bucket_name             = module.data_lake.bucket_name
  bucket_arn              = local.bucket_arn
  warehouse_prefix        = local.zones["transform_zone"]
  enable_table_optimizers = var.enable_table_optimizers
  kms_key_arn             = var.lake_kms_key_arn
}

# ================================================================ functions
module "api_extract" {
  source = "./modules/lambda_function"

  function_name = "${var.project}-api-extract"
  description   = "Extracts API users/sessions of a window into landing_zone/api/."
  package_path  = "${local.lambda_artifacts_dir}/api-extract/bootstrap.zip"
  memory_size   = 512
  timeout       = 900
  # Parts of up to PART_MAX_BYTES are spooled in /tmp before upload.
  ephemeral_storage_size = 1024
  log_retention_days     = var.log_retention_days
  log_level              = var.log_level

  environment = {
    LAKE_URI           = module.data_lake.lake_uri
    API_BASE_URL       = local.api_base_url
    WINDOW_GRANULARITY = var.window_granularity
    # The schedule fires in schedule_timezone but passes scheduled_time in UTC: the previous
    # day/month is taken in the schedule's calendar.
    WINDOW_TIMEZONE  = var.schedule_timezone
    API_TIMEOUT_SECS = "30"
    API_MAX_ATTEMPTS = "5"
    PART_MAX_BYTES   = "67108864"
    SPOOL_DIR        = "/tmp"
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its REST sources.
    PIPELINE = var.pipeline
  }

  policy_statements = concat(local.function_statements["api-extract"], local.lake_kms_statements)
}

module "songs_extract" {
  source = "./modules/lambda_function"

  function_name          = "${var.project}-songs-extract"
  description            = "Extracts the RDS songs table into landing_zone/rds/songs/."
  package_path           = "${local.lambda_artifacts_dir}/songs-extract/bootstrap.zip"
  memory_size            = 512
  timeout                = 900
  ephemeral_storage_size = 1024
  log_retention_days     = var.log_retention_days
  log_level              = var.log_level

  vpc_subnet_ids         = var.songs_subnet_ids
  vpc_security_group_ids = var.songs_security_group_ids

  # The password is read from Secrets Manager at start-up (PG_SECRET_ARN); PG_PASSWORD is
  # for local runs only and never set here.
  environment = {
    LAKE_URI                = module.data_lake.lake_uri
    PG_HOST                 = var.pg_host
    PG_PORT                 = tostring(var.pg_port)
    PG_DATABASE             = var.pg_database
    PG_USER                 = var.pg_user
    PG_SECRET_ARN           = var.pg_secret_arn
    PG_SSLMODE              = var.pg_sslmode
    SONGS_TABLE             = var.songs_table
    PART_MAX_BYTES          = "67108864"
    SPOOL_DIR               = "/tmp"
    PG_CONNECT_TIMEOUT_SECS = "10"
    # A scheduled run lands under the schedule's local date (ingest_on).
    WINDOW_TIMEZONE = var.schedule_timezone
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its SQL sources.
    PIPELINE = var.pipeline
  }

  policy_statements = concat(local.function_statements["songs-extract"], local.pg_secret_kms_statements, local.lake_kms_statements)
}

module "transform" {
  source = "./modules/lambda_function"

  function_name      = "${var.project}-transform"
  description        = "Commits landing objects to the Iceberg silver tables (Glue catalog) with data quality."
  package_path       = "${local.lambda_artifacts_dir}/transform/bootstrap.zip"
  memory_size        = 2048
  timeout            = 900
  log_retention_days = var.log_retention_days
  log_level          = var.log_level

  environment = {
    LAKE_URI          = module.data_lake.lake_uri
    CATALOG           = "glue"
    ICEBERG_WAREHOUSE = module.catalog.warehouse_uri
    ICEBERG_NAMESPACE = module.catalog.database_name
    # The pipeline folder bundled in the package (pipelines/<pipeline>): its tables and rules.
    PIPELINE = var.pipeline
  }

  policy_statements = concat(local.function_statements["transform"], local.lake_kms_statements)
}

# Redshift setup (functions/redshift-setup): schemas, analysts role and grants, idempotently.
module "redshift_setup" {
  source = "./modules/lambda_function"

  function_name      = "${var.project}-redshift-setup"
  description        = "Creates the Redshift external, serving and BI schemas and grants, idempotently."
  package_path       = "${local.lambda_artifacts_dir}/redshift-setup/bootstrap.zip"
  memory_size        = 256
  timeout            = 900
  log_retention_days = var.log_retention_days
  log_level          = var.log_level

  environment = {
    REDSHIFT_WORKGROUP     = module.serving.workgroup_name
    REDSHIFT_DATABASE      = module.serving.database_name
    REDSHIFT_SECRET_ARN    = module.serving.admin_secret_arn
    GLUE_DATABASE          = module.catalog.database_name
    SPECTRUM_ROLE_ARN      = module.serving.spectrum_role_arn
    EXTERNAL_SCHEMA        = var.external_schema
    SERVING_SCHEMA         = var.serving_schema
    BI_SCHEMA              = var.bi_schema
    ANALYSTS_ROLE          = var.analysts_role
    STATEMENT_TIMEOUT_SECS = "300"
  }

  policy_statements = local.function_statements["redshift-setup"]
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

# ================================================================ serving
module "serving" {
  source = "./modules/serving"

  name                 = var.project
  database_name        = var.redshift_database
  base_capacity        = var.redshift_base_capacity
  max_capacity         = var.redshift_max_capacity
  subnet_ids           = var.redshift_subnet_ids
  security_group_ids   = var.redshift_security_group_ids
  glue_arns            = module.catalog.glue_arns
  bucket_arn           = local.bucket_arn
  warehouse_prefix     = local.zones["transform_zone"]
  kms_key_arn          = var.lake_kms_key_arn
  external_schema      = var.external_schema
  serving_schema       = var.serving_schema
  bi_schema            = var.bi_schema
  dbt_image            = var.dbt_image
  dbt_image_tag        = var.dbt_image_tag
  dbt_cpu_architecture = var.dbt_cpu_architecture
  # Read-only root filesystem for the dbt container (bind mounts for target/ and logs/).
  dbt_read_only_root_filesystem = var.dbt_read_only_root_filesystem
  log_retention_days            = var.log_retention_days
}

# ================================================================ orchestration
module "orchestration" {
  source = "./modules/orchestration"

  name = var.project
  function_arns = {
    "api-extract"    = module.api_extract.function_arn
    "songs-extract"  = module.songs_extract.function_arn
    "transform"      = module.transform.function_arn
    "redshift-setup" = module.redshift_setup.function_arn
  }

  # One Extract -> Transform branch per source of pipelines/<pipeline>/deploy.json.
  extracts = local.pipeline_deploy.extracts

  bucket_name               = module.data_lake.bucket_name
  landing_prefix            = local.zones["landing_zone"]
  transform_timeout         = 900
  transform_batch_size      = var.transform_batch_size
  transform_max_concurrency = var.transform_max_concurrency

  ecs_cluster_arn            = module.serving.ecs_cluster_arn
  dbt_task_definition_arn    = module.serving.dbt_task_definition_arn
  dbt_task_definition_family = module.serving.dbt_task_definition_family
  dbt_container_name         = module.serving.dbt_container_name
  dbt_role_arns              = module.serving.dbt_role_arns
  dbt_subnet_ids             = coalesce(var.dbt_subnet_ids, var.redshift_subnet_ids)
  dbt_security_group_ids     = var.dbt_security_group_ids
  dbt_assign_public_ip       = var.dbt_assign_public_ip

  schedule_enabled    = var.schedule_enabled
  schedule_expression = local.schedule_expression
  schedule_timezone   = var.schedule_timezone
  log_retention_days  = var.log_retention_days

  # Table maintenance: transform's remove_orphan_files on its own schedule.
  orphan_files_cleanup_enabled     = var.orphan_files_cleanup_enabled
  orphan_files_schedule_expression = var.orphan_files_schedule_expression
  orphan_files_older_than_hours    = var.orphan_files_older_than_hours
}
