variable "settings" {
  description = "The pipeline's settings, one value of modules/pipeline_settings' pipelines output: names, Glue database, schemas, extracts, the engines of its SQL extracts and the auth of its REST extracts, landing prefixes, dbt command, sources, schedule, backfill concurrency, map results prefix, and run-control's catch-up cap and report and state prefixes."
  type = object({
    pipeline                 = string
    primary                  = bool
    name                     = string
    glue_database_name       = string
    external_schema          = string
    serving_schema           = string
    bi_schema                = string
    extracts                 = list(object({ source = string, function = string, windowed = bool, landing_prefix = string }))
    extract_functions        = list(string)
    sql_engines              = list(string)
    rest_auths               = list(string)
    tables                   = list(string)
    landing_prefixes         = list(string)
    extract_landing          = map(list(string))
    state_prefix             = string
    dbt_project_dir          = string
    dbt_command              = list(string)
    api_base_url             = string
    pg_host                  = string
    pg_port                  = number
    pg_database              = string
    pg_user                  = string
    pg_secret_arn            = string
    pg_sslmode               = string
    mysql_host               = string
    mysql_port               = number
    mysql_database           = string
    mysql_user               = string
    mysql_secret_arn         = string
    mysql_sslmode            = string
    oauth_token_url          = string
    oauth_client_id          = string
    oauth_client_secret_arn  = string
    oauth_scope              = string
    oauth_secret_kms_key_arn = string
    api_retry_after_max_secs = number
    songs_table              = string
    songs_subnet_ids         = list(string)
    songs_security_group_ids = list(string)
    schedule_enabled         = bool
    schedule_expression      = string
    backfill_max_concurrency = number
    map_results_prefix       = string
    catch_up_max_windows     = number
    reports_prefix           = string
    run_control_prefixes     = object({ reports = string, state = string })
  })
}

# ---------------------------------------------------------------- shared: functions
variable "lambda_artifacts_dir" {
  description = "Directory of the cargo-lambda zips (<dir>/<crate>/bootstrap.zip); every pipeline deploys the same binaries."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group of the pipeline (functions, state machine, dbt task)."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Application log level of the functions."
  type        = string
  default     = "INFO"
}

variable "xray_tracing" {
  description = "Active X-Ray tracing of the pipeline's functions and state machine."
  type        = bool
  default     = false
}

variable "window_granularity" {
  description = "Period extracted by a scheduled run or a run without dates: day or month (the previous one)."
  type        = string
  default     = "day"
}

variable "schedule_timezone" {
  description = "IANA time zone of the schedules, and the extracts' WINDOW_TIMEZONE."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as UTC, Europe/Paris or Asia/Tokyo."
  }
}

# ---------------------------------------------------------------- shared: lake
variable "bucket_name" {
  description = "Data lake bucket."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the data lake bucket."
  type        = string
}

variable "lake_uri" {
  description = "LAKE_URI of the functions."
  type        = string
}

variable "zones" {
  description = "Key prefix of each zone of the lake (data_lake's zone_prefixes output), each ending with \"/\"."
  type        = map(string)
}

variable "lake_kms_key_arn" {
  description = "Customer managed KMS key of the bucket; null when SSE-S3."
  type        = string
  default     = null
}

variable "pg_secret_kms_key_arn" {
  description = "Customer managed KMS key encrypting the PostgreSQL secret, if any (grants kms:Decrypt when the pipeline has a PostgreSQL source)."
  type        = string
  default     = null
}

variable "mysql_secret_kms_key_arn" {
  description = "Customer managed KMS key encrypting the MySQL secret, if any (grants kms:Decrypt when the pipeline has a MySQL source)."
  type        = string
  default     = null
}

variable "enable_table_optimizers" {
  description = "Create Glue table optimizers for the pipeline's tables (enable on a second apply: transform creates the tables)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- shared: Redshift, ECR, ECS
variable "redshift_workgroup_name" {
  description = "Redshift Serverless workgroup (REDSHIFT_WORKGROUP)."
  type        = string
}

variable "redshift_workgroup_arn" {
  description = "ARN of the workgroup (ExecuteStatement of redshift-setup and run-control)."
  type        = string
}

variable "redshift_database" {
  description = "Redshift database."
  type        = string
  default     = "dev"
}

variable "redshift_admin_secret_arn" {
  description = "Secrets Manager secret of the Redshift admin."
  type        = string
}

variable "redshift_endpoint_address" {
  description = "Host of the Redshift Serverless endpoint."
  type        = string
}

variable "redshift_endpoint_port" {
  description = "Port of the Redshift Serverless endpoint."
  type        = number
}

variable "spectrum_role_arn" {
  description = "IAM role of the external schemas (shared; it reads every pipeline's Glue database)."
  type        = string
}

variable "analysts_role" {
  description = "Redshift role granted read access on the serving and BI schemas."
  type        = string
  default     = "analysts"
}

variable "ecr_repository_url" {
  description = "ECR repository of the dbt image (one image for every pipeline)."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository of the dbt image."
  type        = string
}

variable "ecs_cluster_arn" {
  description = "ECS cluster running the dbt tasks."
  type        = string
}

variable "dbt_image" {
  description = "Full image URI of the dbt projects; null uses the ECR repository with dbt_image_tag."
  type        = string
  default     = null
}

variable "dbt_image_tag" {
  description = "Tag of the dbt image in the ECR repository."
  type        = string
  default     = "0.1.0"
}

variable "dbt_cpu_architecture" {
  description = "CPU architecture of the dbt image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "dbt_read_only_root_filesystem" {
  description = "Run the dbt container with a read-only root filesystem (target/ and logs/ on bind mounts)."
  type        = bool
  default     = true
}

variable "dbt_subnet_ids" {
  description = "Subnets of the dbt Fargate task."
  type        = list(string)
}

variable "dbt_security_group_ids" {
  description = "Security groups of the dbt Fargate task."
  type        = list(string)
}

variable "dbt_assign_public_ip" {
  description = "Give the dbt task a public IP."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- orchestration
variable "transform_batch_size" {
  description = "Landing objects per transform invocation from the queue."
  type        = number
  default     = 10
}

variable "transform_max_concurrency" {
  description = "Maximum concurrent transform invocations from the landing queue (2..1000)."
  type        = number
  default     = 2
}

variable "orphan_files_cleanup_enabled" {
  description = "Invoke transform on orphan_files_schedule_expression to delete the files of the pipeline's Iceberg tables that no snapshot references."
  type        = bool
  default     = true
}

variable "orphan_files_schedule_expression" {
  description = "Schedule expression of the orphan file removal."
  type        = string
  default     = "rate(1 day)"
}

variable "orphan_files_older_than_hours" {
  description = "Safety age of the orphan file removal (integer, >= 24)."
  type        = number
  default     = 72

  validation {
    condition     = var.orphan_files_older_than_hours >= 24 && floor(var.orphan_files_older_than_hours) == var.orphan_files_older_than_hours
    error_message = "orphan_files_older_than_hours must be an integer of at least 24: a younger unreferenced file may belong to a commit still in flight."
  }
}
