# ---------------------------------------------------------------- general
variable "project" {
  description = "Name prefix of every resource."
  type        = string
  default     = "deftunes"
}

variable "pipelines" {
  description = <<-EOT
    The pipelines to deploy, by folder name under pipelines/ (its deploy.json, generated from its
    pipeline.toml, gives the extracts, landing prefixes, tables, Glue namespace and dbt project).
    Each gets its own Glue database, functions (the same zips, PIPELINE=<key>), state machine,
    landing queue and dbt task; the lake, Redshift, ECR and ECS are shared. Every attribute is an
    optional override of a top-level default: api_base_url, api_retry_after_max_secs, oauth_*,
    pg_*, mysql_* and songs_* (its sources: api_base_url for its REST extracts, oauth_* for those
    with "auth": "oauth2_client_credentials", pg_* for its PostgreSQL extracts, mysql_* for its
    MySQL ones, songs_* for the SQL extractor; the top-level songs_table is the default of the
    pipeline keyed var.project only, and a pipeline with an OAuth extract takes only its own
    api_base_url: its bearer token goes there),
    schedule_enabled, schedule_expression, backfill_max_concurrency and catch_up_max_windows, glue_database_name (default: deploy.json's
    namespace), external_schema, serving_schema and bi_schema (default: the top-level variables
    for the pipeline keyed var.project, <key>_transform, <key>_serving and <key>_bi for the
    others, "-" as "_"), and name_prefix (default: var.project for the pipeline keyed var.project,
    which keeps the single-pipeline names, <project>-<key> for the others).
  EOT
  type = map(object({
    name_prefix              = optional(string)
    api_base_url             = optional(string)
    pg_host                  = optional(string)
    pg_port                  = optional(number)
    pg_database              = optional(string)
    pg_user                  = optional(string)
    pg_secret_arn            = optional(string)
    pg_sslmode               = optional(string)
    mysql_host               = optional(string)
    mysql_port               = optional(number)
    mysql_database           = optional(string)
    mysql_user               = optional(string)
    mysql_secret_arn         = optional(string)
    mysql_sslmode            = optional(string)
    oauth_token_url          = optional(string)
    oauth_client_id          = optional(string)
    oauth_client_secret_arn  = optional(string)
    oauth_scope              = optional(string)
    oauth_secret_kms_key_arn = optional(string)
    api_retry_after_max_secs = optional(number)
    songs_table              = optional(string)
    songs_subnet_ids         = optional(list(string))
    songs_security_group_ids = optional(list(string))
    glue_database_name       = optional(string)
    external_schema          = optional(string)
    serving_schema           = optional(string)
    bi_schema                = optional(string)
    schedule_enabled         = optional(bool)
    schedule_expression      = optional(string)
    backfill_max_concurrency = optional(number)
    catch_up_max_windows     = optional(number)
  }))
  default = { deftunes = {} }

  validation {
    condition     = length(var.pipelines) > 0 && alltrue([for k in keys(var.pipelines) : can(regex("^[a-z0-9][a-z0-9_-]*$", k))])
    error_message = "pipelines needs at least one pipeline, each keyed by a folder name under pipelines/ (lower-case letters, digits, _ and -; no path)."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : contains(["disable", "require", "verify-full"], coalesce(p.pg_sslmode, "require"))])
    error_message = "A pipeline's pg_sslmode must be disable, require or verify-full."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : contains(["disable", "require", "verify-full"], coalesce(p.mysql_sslmode, "require"))])
    error_message = "A pipeline's mysql_sslmode must be disable, require or verify-full."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : p.oauth_token_url == null || startswith(coalesce(p.oauth_token_url, "-"), "https://")])
    error_message = "A pipeline's oauth_token_url must be an https:// URL (the client secret is sent to it)."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : p.oauth_client_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", coalesce(p.oauth_client_secret_arn, "-")))])
    error_message = "A pipeline's oauth_client_secret_arn must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>)."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : p.api_retry_after_max_secs == null || (coalesce(p.api_retry_after_max_secs, 0) >= 0 && coalesce(p.api_retry_after_max_secs, 0) <= 900 && floor(coalesce(p.api_retry_after_max_secs, 0)) == coalesce(p.api_retry_after_max_secs, 0))])
    error_message = "A pipeline's api_retry_after_max_secs must be an integer from 0 to 900 (seconds; api-extract refuses more)."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : coalesce(p.backfill_max_concurrency, 1) >= 1 && coalesce(p.backfill_max_concurrency, 1) <= 10000 && floor(coalesce(p.backfill_max_concurrency, 1)) == coalesce(p.backfill_max_concurrency, 1)])
    error_message = "A pipeline's backfill_max_concurrency must be an integer from 1 to 10000 (child executions of the windows' Distributed Map at a time)."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : coalesce(p.catch_up_max_windows, 1) >= 1 && coalesce(p.catch_up_max_windows, 1) <= 2000 && floor(coalesce(p.catch_up_max_windows, 1)) == coalesce(p.catch_up_max_windows, 1)])
    error_message = "A pipeline's catch_up_max_windows must be an integer from 1 to 2000 (windows one scheduled run catches up; they travel in the execution's state, 256 KiB at most)."
  }
}

variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Extra tags for every resource (Project is always set)."
  type        = map(string)
  default     = {}
}

variable "lambda_artifacts_dir" {
  description = "Directory of the cargo-lambda zips (<dir>/<crate>/bootstrap.zip). null means \"$${path.root}/../target/lambda\", where `make lambda-build` writes them."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (functions, state machine, dbt task)."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Application log level of the functions."
  type        = string
  default     = "INFO"
}

# ---------------------------------------------------------------- data lake
variable "lake_bucket_name" {
  description = "Name of the data lake bucket. null means <project>-lake-<account id>-<region>."
  type        = string
  default     = null
}

variable "lake_prefix" {
  description = "Optional key prefix of every zone inside the bucket (\"\" for the bucket root)."
  type        = string
  default     = ""
}

variable "lake_kms_key_arn" {
  description = "Customer managed KMS key for the bucket; null uses SSE-S3. When set, every role touching the lake gets kms:Decrypt/GenerateDataKey on it."
  type        = string
  default     = null
}

variable "landing_expiration_days" {
  description = "Days after which landing_zone/ objects expire (0 keeps them)."
  type        = number
  default     = 90
}

variable "lake_force_destroy" {
  description = "Let terraform destroy delete a non-empty lake bucket. Keep false outside demo accounts."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- sources
variable "api_base_url" {
  description = "Base URL of the DeFtunes purchases API (GET users, sessions relative to it: end a URL that has a path with \"/\"), the default of every pipeline's api_base_url but those with an OAuth REST source (they take only their own: their bearer token goes to it). null uses the demo source's function URL (deploy_demo_source). A pipeline with a REST source needs one of them (a plan-time check)."
  type        = string
  default     = null
}

variable "demo_source_reserved_concurrency" {
  description = "Reserved concurrency of the demo source (functions/api-emulator): caps what a public, unauthenticated URL can cost. -1 leaves it unreserved (accounts whose concurrency quota is 10 cannot reserve any)."
  type        = number
  default     = 10

  validation {
    condition     = var.demo_source_reserved_concurrency == -1 || (var.demo_source_reserved_concurrency >= 1 && floor(var.demo_source_reserved_concurrency) == var.demo_source_reserved_concurrency)
    error_message = "demo_source_reserved_concurrency must be -1 (unreserved) or a positive integer."
  }
}

variable "deploy_demo_source" {
  description = "Deploy functions/api-emulator, a synthetic DeFtunes API, behind a public function URL (no authentication: synthetic data only), for accounts without the DeFtunes API. api-extract uses it when api_base_url is null. Load the matching songs into the database with `deftunes load-songs`."
  type        = bool
  default     = false
}

variable "window_granularity" {
  description = "Period extracted by a scheduled run or a run without dates: day or month (the previous one)."
  type        = string
  default     = "day"

  validation {
    condition     = contains(["day", "month"], var.window_granularity)
    error_message = "window_granularity must be day or month."
  }
}

variable "pg_host" {
  description = "Host of the DeFtunes RDS PostgreSQL database: the default of every pipeline's pg_host. Needed (here or per pipeline) by the pipelines with a PostgreSQL source (deploy.json extracts with engine postgres)."
  type        = string
  default     = null
}

variable "pg_port" {
  description = "Port of the RDS database."
  type        = number
  default     = 5432
}

variable "pg_database" {
  description = "Database holding deftunes.songs."
  type        = string
  default     = "postgres"
}

variable "pg_user" {
  description = "Database user of songs-extract."
  type        = string
  default     = "postgres"
}

variable "pg_secret_arn" {
  description = "Secrets Manager secret with the database password (plain string, or JSON with \"password\", e.g. the RDS-managed secret): the default of every pipeline's pg_secret_arn. Needed (here or per pipeline) by the pipelines with a PostgreSQL source."
  type        = string
  default     = null
}

variable "pg_secret_kms_key_arn" {
  description = "Customer managed KMS key encrypting pg_secret_arn, if any (grants kms:Decrypt)."
  type        = string
  default     = null
}

variable "pg_sslmode" {
  description = "TLS mode of the database connection: disable, require or verify-full."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["disable", "require", "verify-full"], var.pg_sslmode)
    error_message = "pg_sslmode must be disable, require or verify-full."
  }
}

variable "mysql_host" {
  description = "Host of the MySQL / MariaDB database of the pipelines with a MySQL source (deploy.json extracts with engine mysql, e.g. classicmodels): the default of every pipeline's mysql_host. Needed (here or per pipeline) by those pipelines."
  type        = string
  default     = null
}

variable "mysql_port" {
  description = "Port of the MySQL database."
  type        = number
  default     = 3306
  nullable    = false
}

variable "mysql_database" {
  description = "Default database (schema) of songs-extract's MySQL connection (MYSQL_DATABASE). null: none, the sources name their schema (classicmodels.orders)."
  type        = string
  default     = null
}

variable "mysql_user" {
  description = "MySQL user of songs-extract (MYSQL_USER, which it requires). Default: admin, the master user RDS proposes."
  type        = string
  default     = "admin"
  nullable    = false
}

variable "mysql_secret_arn" {
  description = "Secrets Manager secret with the MySQL password (plain string, or JSON with \"password\", e.g. the RDS-managed secret): the default of every pipeline's mysql_secret_arn. Needed (here or per pipeline) by the pipelines with a MySQL source."
  type        = string
  default     = null
}

variable "mysql_secret_kms_key_arn" {
  description = "Customer managed KMS key encrypting the MySQL secrets, if any (grants kms:Decrypt to the songs-extract of the pipelines with a MySQL source)."
  type        = string
  default     = null
}

variable "mysql_sslmode" {
  description = "TLS mode of the MySQL connection: disable, require or verify-full."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["disable", "require", "verify-full"], var.mysql_sslmode)
    error_message = "mysql_sslmode must be disable, require or verify-full."
  }
}

variable "oauth_token_url" {
  description = "Token endpoint (OAUTH_TOKEN_URL, https://) of the OAuth 2.0 client credentials grant of the pipelines whose REST extracts have \"auth\": \"oauth2_client_credentials\" in deploy.json (e.g. spotify): the default of every pipeline's oauth_token_url. Needed (here or per pipeline) by those pipelines."
  type        = string
  default     = null

  validation {
    condition     = var.oauth_token_url == null || startswith(coalesce(var.oauth_token_url, "-"), "https://")
    error_message = "oauth_token_url must be an https:// URL (the client secret is sent to it)."
  }
}

variable "oauth_client_id" {
  description = "OAuth 2.0 client id (OAUTH_CLIENT_ID) of the pipelines with an OAuth REST source: the default of every pipeline's oauth_client_id. Needed (here or per pipeline) by those pipelines."
  type        = string
  default     = null
}

variable "oauth_client_secret_arn" {
  description = "Secrets Manager secret with the OAuth 2.0 client secret (OAUTH_CLIENT_SECRET_ARN; a plain string, or JSON with \"password\": see functions/api-extract/README.md): the default of every pipeline's oauth_client_secret_arn. Needed (here or per pipeline) by the pipelines with an OAuth REST source; their api-extract may read it, no other role."
  type        = string
  default     = null

  validation {
    condition     = var.oauth_client_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", coalesce(var.oauth_client_secret_arn, "-")))
    error_message = "oauth_client_secret_arn must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>)."
  }
}

variable "oauth_scope" {
  description = "Scope requested with the OAuth 2.0 token (OAUTH_SCOPE), the default of every pipeline's oauth_scope. null: none is sent."
  type        = string
  default     = null
}

variable "oauth_secret_kms_key_arn" {
  description = "Customer managed KMS key encrypting the OAuth client secrets, if any: the default of every pipeline's oauth_secret_kms_key_arn (grants kms:Decrypt to the api-extract of the pipelines with an OAuth REST source)."
  type        = string
  default     = null
}

variable "api_retry_after_max_secs" {
  description = "Longest Retry-After (of a 429 or 503) api-extract waits out within an invocation (API_RETRY_AFTER_MAX_SECS); a longer one fails the extract as SourceUnavailable, which the state machine retries later. The default of every pipeline's api_retry_after_max_secs. null: not set, the function's default (120). The wait counts against the function's 900-second timeout: keep it well below."
  type        = number
  default     = null

  validation {
    condition     = var.api_retry_after_max_secs == null || (coalesce(var.api_retry_after_max_secs, 0) >= 0 && coalesce(var.api_retry_after_max_secs, 0) <= 900 && floor(coalesce(var.api_retry_after_max_secs, 0)) == coalesce(var.api_retry_after_max_secs, 0))
    error_message = "api_retry_after_max_secs must be an integer from 0 to 900 (seconds; api-extract refuses more)."
  }
}

variable "songs_table" {
  description = "Overrides the table of the one SQL table source of the pipeline keyed var.project (songs-extract's SONGS_TABLE, e.g. deftunes.songs). null: the table its pipeline.toml names. Other pipelines take only their own songs_table: a pipeline with several table sources (classicmodels) must leave it unset."
  type        = string
  default     = null
}

variable "songs_subnet_ids" {
  description = "Subnets (of the databases' VPC) of songs-extract, the SQL extractor of every engine, the default of every pipeline's. They need a route to S3 and Secrets Manager (NAT or VPC endpoints). Empty: the function runs outside a VPC."
  type        = list(string)
  default     = []
}

variable "songs_security_group_ids" {
  description = "Security groups of songs-extract (the default of every pipeline's); the database's security group must accept them on pg_port (PostgreSQL) or mysql_port (MySQL)."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------- catalog
variable "enable_table_optimizers" {
  description = "Create Glue table optimizers (compaction, snapshot retention, orphan files) for the tables of every pipeline (deploy.json tables). The tables exist only after the first pipeline run: enable on a second apply."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- serving
variable "redshift_subnet_ids" {
  description = "Private subnets of the Redshift Serverless workgroup (three AZs); also the default subnets of the dbt task."
  type        = list(string)
}

variable "redshift_security_group_ids" {
  description = "Security groups of the workgroup; allow 5439 from dbt_security_group_ids."
  type        = list(string)
}

variable "redshift_database" {
  description = "Redshift database."
  type        = string
  default     = "dev"
}

variable "redshift_base_capacity" {
  description = "Base RPUs of the workgroup."
  type        = number
  default     = 8
}

variable "redshift_max_capacity" {
  description = "Maximum RPUs of the workgroup (cost guard)."
  type        = number
  default     = 32
}

variable "external_schema" {
  description = "Redshift external (Spectrum) schema over the Glue silver database of the pipeline keyed var.project (others: <pipeline>_transform, or their external_schema)."
  type        = string
  default     = "deftunes_transform"
}

variable "serving_schema" {
  description = "Redshift schema of the star schema dbt builds for the pipeline keyed var.project (others: <pipeline>_serving, or their serving_schema)."
  type        = string
  default     = "deftunes_serving"
}

variable "bi_schema" {
  description = "Redshift schema of the BI views dbt builds for the pipeline keyed var.project (others: <pipeline>_bi, or their bi_schema)."
  type        = string
  default     = "deftunes_bi"
}

variable "analysts_role" {
  description = "Redshift role granted read access on the serving and BI schemas."
  type        = string
  default     = "analysts"
}

variable "dbt_image" {
  description = "Full image URI of the dbt image (dbt_modeling/Dockerfile: every pipeline's dbt project); null uses the ECR repository created here with dbt_image_tag."
  type        = string
  default     = null
}

variable "dbt_image_tag" {
  description = "Tag of the dbt image pushed to the ECR repository (immutable tags)."
  type        = string
  default     = "0.1.0"
}

variable "dbt_cpu_architecture" {
  description = "CPU architecture of the dbt image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.dbt_cpu_architecture)
    error_message = "dbt_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "dbt_read_only_root_filesystem" {
  description = "Run the dbt container with a read-only root filesystem, dbt's target/ and logs/ on task bind mounts (DBT_TARGET_PATH, DBT_LOG_PATH). Needs a dbt image whose Dockerfile declares VOLUME [\"/dbt/target\", \"/dbt/logs\"] owned by the dbt user; dbt_modeling/Dockerfile does."
  type        = bool
  default     = true
}

variable "dbt_subnet_ids" {
  description = "Subnets of the dbt Fargate task; null uses redshift_subnet_ids."
  type        = list(string)
  default     = null
}

variable "dbt_security_group_ids" {
  description = "Security groups of the dbt Fargate task (egress to Redshift 5439 and HTTPS)."
  type        = list(string)
}

variable "dbt_assign_public_ip" {
  description = "Give the dbt task a public IP (public subnets without NAT only)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- orchestration
variable "schedule_enabled" {
  description = "Start the pipelines on schedule (EventBridge Scheduler): the default of every pipeline's schedule_enabled. Off by default: turn it on once the dbt image is pushed and a run started by hand has succeeded."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "Schedule expression, the default of every pipeline's; null means 01:30 daily (window_granularity day) or 01:30 on the 1st (month)."
  type        = string
  default     = null
}

variable "schedule_timezone" {
  description = "IANA time zone of the schedule. Also api-extract's and songs-extract's WINDOW_TIMEZONE: the previous day or month of a scheduled run follows this zone's calendar."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as UTC, Europe/Paris or Asia/Tokyo."
  }
}

variable "orphan_files_cleanup_enabled" {
  description = "Invoke transform on orphan_files_schedule_expression to delete the files of the Iceberg tables that no snapshot references (Iceberg's remove_orphan_files)."
  type        = bool
  default     = true
}

variable "orphan_files_schedule_expression" {
  description = "Schedule expression of the orphan file removal, e.g. rate(1 day) or cron(0 4 * * ? *) (cron in schedule_timezone)."
  type        = string
  default     = "rate(1 day)"
}

variable "orphan_files_older_than_hours" {
  description = "Safety age of the orphan file removal: an unreferenced file is deleted only when older than this many hours. At least 24: a younger file may belong to a commit still in flight."
  type        = number
  default     = 72

  validation {
    condition     = var.orphan_files_older_than_hours >= 24 && floor(var.orphan_files_older_than_hours) == var.orphan_files_older_than_hours
    error_message = "orphan_files_older_than_hours must be an integer of at least 24: a younger unreferenced file may belong to a commit still in flight."
  }
}

variable "backfill_max_concurrency" {
  description = "Windows of a run (a backfill's \"windows\") processed at the same time, each as a child execution of the state machine's Distributed Map: the default of every pipeline's backfill_max_concurrency. 1 runs them one after the other. Each window calls every extract and transform of the pipeline, so this many windows commit to the same tables at once (CommitConflict is retried) and call the sources at once."
  type        = number
  default     = 10

  validation {
    condition     = var.backfill_max_concurrency >= 1 && var.backfill_max_concurrency <= 10000 && floor(var.backfill_max_concurrency) == var.backfill_max_concurrency
    error_message = "backfill_max_concurrency must be an integer from 1 to 10000 (a Distributed Map runs at most 10,000 child executions at a time)."
  }
}

variable "catch_up_max_windows" {
  description = "Most windows one scheduled run processes when it catches up missed schedules (run-control's CATCH_UP_MAX_WINDOWS): the default of every pipeline's catch_up_max_windows. A scheduled run processes every period since the last successful window; past this many, the oldest ones, and the next run goes on from there."
  type        = number
  default     = 400

  validation {
    condition     = var.catch_up_max_windows >= 1 && var.catch_up_max_windows <= 2000 && floor(var.catch_up_max_windows) == var.catch_up_max_windows
    error_message = "catch_up_max_windows must be an integer from 1 to 2000 (windows one scheduled run catches up; they travel in the execution's state, 256 KiB at most)."
  }
}

variable "transform_max_concurrency" {
  description = "Maximum concurrent transform invocations from the landing queue (2..1000)."
  type        = number
  default     = 2

  validation {
    condition     = var.transform_max_concurrency >= 2 && var.transform_max_concurrency <= 1000 && floor(var.transform_max_concurrency) == var.transform_max_concurrency
    error_message = "transform_max_concurrency must be an integer from 2 to 1000 (the SQS event source mapping's maximum concurrency range)."
  }
}

variable "transform_batch_size" {
  description = "Landing objects per transform invocation from the queue."
  type        = number
  default     = 10
}

# ---------------------------------------------------------------- operations
variable "xray_tracing" {
  description = "Active X-Ray tracing of every function and state machine (each role gets the X-Ray write permissions). Off by default: traces cost per segment and the JSON logs and execution history cover the usual questions."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (the address must confirm the subscription). null: no subscription; subscribe what you need to the alarm_topic_arn output."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", coalesce(var.alarm_email, "x")))
    error_message = "alarm_email must be an e-mail address (or null for no subscription)."
  }
}

variable "quarantine_rate_threshold" {
  description = "Alarm when a pipeline's quarantined records exceed this share of its records in (RecordsQuarantined / RecordsIn of the DeFtunes metrics, summed over quarantine_rate_period_seconds), e.g. 0.05 for 5 %."
  type        = number
  default     = 0.05

  validation {
    condition     = var.quarantine_rate_threshold >= 0 && var.quarantine_rate_threshold < 1
    error_message = "quarantine_rate_threshold is a share of the records in: at least 0 and below 1."
  }
}

variable "quarantine_rate_period_seconds" {
  description = "Period over which the quarantine rate sums records in and quarantined records (a multiple of 60 seconds, at most a day)."
  type        = number
  default     = 3600

  validation {
    condition     = var.quarantine_rate_period_seconds >= 60 && var.quarantine_rate_period_seconds <= 86400 && var.quarantine_rate_period_seconds % 60 == 0
    error_message = "quarantine_rate_period_seconds must be a multiple of 60 from 60 to 86400."
  }
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena workgroup's cost guard: a query that scans more bytes than this is cancelled (at least 10 MB)."
  type        = number
  default     = 10737418240

  validation {
    condition     = var.athena_bytes_scanned_cutoff_per_query >= 10485760
    error_message = "athena_bytes_scanned_cutoff_per_query must be at least 10485760 (10 MB), Athena's minimum."
  }
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results (athena-results/ in the lake bucket) expire. 0 keeps them."
  type        = number
  default     = 30
}
