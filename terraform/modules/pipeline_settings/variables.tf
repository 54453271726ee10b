variable "project" {
  description = "Name prefix of every resource. The pipeline whose key equals it keeps the single-pipeline names (<project>-transform, ...) and takes the schema variables as they are."
  type        = string
}

variable "pipelines" {
  description = "The pipelines to deploy, by folder name under pipelines/ (the root's var.pipelines: same type)."
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

  validation {
    condition     = length(var.pipelines) > 0 && alltrue([for k in keys(var.pipelines) : can(regex("^[a-z0-9][a-z0-9_-]*$", k))])
    error_message = "pipelines needs at least one pipeline, each keyed by a folder name under pipelines/ (lower-case letters, digits, _ and -; no path)."
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

variable "pipelines_dir" {
  description = "The repository's pipelines/ folder (each pipeline's deploy.json is read from <dir>/<key>/deploy.json)."
  type        = string
}

variable "lake_key_prefix" {
  description = "Key prefix of every zone in the bucket (\"\" or \"<prefix>/\"): deploy.json's landing prefixes are relative to it."
  type        = string
  default     = ""
}

variable "defaults" {
  description = "The top-level settings every pipeline takes unless it overrides them. Schemas and songs_table apply as they are to the pipeline keyed var.project only; others get <pipeline>_transform, <pipeline>_serving and <pipeline>_bi, and their own songs_table or none. api_base_url is not the default of a pipeline with an OAuth REST source (it takes only its own)."
  type = object({
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
    external_schema          = string
    serving_schema           = string
    bi_schema                = string
    schedule_enabled         = bool
    schedule_expression      = string
    backfill_max_concurrency = number
    catch_up_max_windows     = number
  })

  validation {
    condition     = var.defaults.backfill_max_concurrency >= 1 && var.defaults.backfill_max_concurrency <= 10000 && floor(var.defaults.backfill_max_concurrency) == var.defaults.backfill_max_concurrency
    error_message = "defaults.backfill_max_concurrency must be an integer from 1 to 10000 (child executions of the windows' Distributed Map at a time)."
  }

  validation {
    condition     = var.defaults.catch_up_max_windows >= 1 && var.defaults.catch_up_max_windows <= 2000 && floor(var.defaults.catch_up_max_windows) == var.defaults.catch_up_max_windows
    error_message = "defaults.catch_up_max_windows must be an integer from 1 to 2000 (windows one scheduled run catches up; they travel in the execution's state, 256 KiB at most)."
  }
}
