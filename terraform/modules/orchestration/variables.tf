variable "name" {
  description = "Name prefix of the orchestration resources."
  type        = string
}

variable "function_arns" {
  description = "ARN of each pipeline function, by crate name: transform, redshift-setup and run-control, and the extract functions (api-extract, songs-extract) the pipeline's extracts call."
  type        = map(string)

  validation {
    condition     = alltrue([for k in ["transform", "redshift-setup", "run-control"] : contains(keys(var.function_arns), k)])
    error_message = "function_arns needs transform, redshift-setup and run-control."
  }
}

variable "extracts" {
  description = "The sources the state machine extracts, one Parallel branch each, in order (the `extracts` of pipelines/<pipeline>/deploy.json): source name, extract function (api-extract or songs-extract) and whether it takes the window (start_date, end_date, scheduled_time). Empty for a files-only pipeline: the state machine then goes straight to Redshift setup and dbt."
  type = list(object({
    source   = string
    function = string
    windowed = bool
  }))

  validation {
    condition     = alltrue([for e in var.extracts : can(regex("^[a-z][a-z0-9_]*$", e.source))]) && length(distinct([for e in var.extracts : e.source])) == length(var.extracts)
    error_message = "Each extract source must be a distinct lower-case name ([a-z][a-z0-9_]*): it names states and result fields."
  }

  validation {
    condition     = alltrue([for e in var.extracts : contains(["api-extract", "songs-extract"], e.function)])
    error_message = "An extract's function must be api-extract or songs-extract."
  }

  validation {
    condition     = alltrue([for e in var.extracts : contains(keys(var.function_arns), e.function)])
    error_message = "Every extract's function must be in function_arns: deploy the extract functions the pipeline's extracts call."
  }
}

variable "backfill_max_concurrency" {
  description = "Windows of a run processed at the same time: MaxConcurrency of the windows' Distributed Map, whose child executions each run one window (integer, 1..10000; 1 runs them one after the other)."
  type        = number
  default     = 10

  validation {
    condition     = var.backfill_max_concurrency >= 1 && var.backfill_max_concurrency <= 10000 && floor(var.backfill_max_concurrency) == var.backfill_max_concurrency
    error_message = "backfill_max_concurrency must be an integer from 1 to 10000 (a Distributed Map runs at most 10,000 child executions at a time)."
  }
}

variable "map_results_prefix" {
  description = "Key prefix in the lake bucket, without a trailing \"/\", under which the windows' Distributed Map writes each run's results (ResultWriter: <prefix>/<map run id>/manifest.json and SUCCEEDED_/FAILED_ files): what each window landed and committed."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.map_results_prefix))
    error_message = "map_results_prefix must be a key prefix such as reports/map-results/deftunes: no leading or trailing \"/\", no empty segment."
  }
}

variable "bucket_name" {
  description = "Data lake bucket whose object-created events below landing_prefixes feed the transform queue."
  type        = string
}

variable "landing_prefixes" {
  description = "Key prefixes of the pipeline's landing folders (its deploy.json landing_prefixes, below the lake prefix, e.g. \"landing_zone/api/users/\"): the transform queue receives the objects created below them only."
  type        = list(string)

  validation {
    condition     = length(var.landing_prefixes) > 0 && alltrue([for p in var.landing_prefixes : endswith(p, "/")])
    error_message = "landing_prefixes needs at least one prefix, each ending with \"/\" (a folder, so that no sibling folder matches)."
  }
}

variable "transform_batch_size" {
  description = "Messages (landing objects) per transform invocation from SQS."
  type        = number
  default     = 10
}

variable "transform_batching_window_seconds" {
  description = "Seconds SQS waits to fill a batch before invoking transform."
  type        = number
  default     = 10
}

variable "transform_max_concurrency" {
  description = "Maximum concurrent transform invocations from SQS (2..1000): bounds commit conflicts and Glue load."
  type        = number
  default     = 2

  validation {
    condition     = var.transform_max_concurrency >= 2 && var.transform_max_concurrency <= 1000 && floor(var.transform_max_concurrency) == var.transform_max_concurrency
    error_message = "transform_max_concurrency must be an integer from 2 to 1000 (the SQS event source mapping's maximum concurrency range)."
  }
}

variable "transform_timeout" {
  description = "Timeout of the transform function in seconds (sizes the queue's visibility timeout)."
  type        = number
}

variable "max_receive_count" {
  description = "Deliveries of a message before it moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "ecs_cluster_arn" {
  description = "ECS cluster running the dbt task."
  type        = string
}

variable "dbt_task_definition_arn" {
  description = "ARN of the dbt task definition."
  type        = string
}

variable "dbt_task_definition_family" {
  description = "Family of the dbt task definition (IAM scope covers all its revisions)."
  type        = string
}

variable "dbt_container_name" {
  description = "Container name in the dbt task definition."
  type        = string
}

variable "dbt_role_arns" {
  description = "Execution and task role ARNs of the dbt task (iam:PassRole)."
  type        = list(string)
}

variable "dbt_subnet_ids" {
  description = "Subnets of the dbt Fargate task (must reach Redshift, ECR, CloudWatch Logs and Secrets Manager)."
  type        = list(string)
}

variable "dbt_security_group_ids" {
  description = "Security groups of the dbt Fargate task."
  type        = list(string)
}

variable "dbt_assign_public_ip" {
  description = "Give the dbt task a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "schedule_enabled" {
  description = "Whether the EventBridge Scheduler schedule starts the state machine."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "Scheduler expression, e.g. cron(30 1 * * ? *) daily or cron(30 1 1 * ? *) monthly."
  type        = string
}

variable "schedule_timezone" {
  description = "IANA time zone of the schedule expression."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as UTC, Europe/Paris or Asia/Tokyo."
  }
}

variable "orphan_files_cleanup_enabled" {
  description = "Whether the maintenance schedule invokes transform to remove orphan files of the Iceberg tables."
  type        = bool
  default     = true
}

variable "orphan_files_schedule_expression" {
  description = "Scheduler expression of the orphan file removal, e.g. rate(1 day) or cron(0 4 * * ? *) (in schedule_timezone)."
  type        = string
  default     = "rate(1 day)"
}

variable "orphan_files_older_than_hours" {
  description = "Safety age of the orphan file removal: only unreferenced files older than this are deleted (integer, >= 24)."
  type        = number
  default     = 72

  validation {
    condition     = var.orphan_files_older_than_hours >= 24 && floor(var.orphan_files_older_than_hours) == var.orphan_files_older_than_hours
    error_message = "orphan_files_older_than_hours must be an integer of at least 24: a younger unreferenced file may belong to a commit still in flight."
  }
}

variable "xray_tracing" {
  description = "X-Ray tracing of the state machine's executions, and the role's permission to send the traces."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the state machine's log group."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key encrypting the bucket (null when SSE-S3): the state machine's ResultWriter encrypts the map results with it. Unused by queues (SQS-managed SSE)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
