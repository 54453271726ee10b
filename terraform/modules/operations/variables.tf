variable "name" {
  description = "Name prefix of the shared operations resources (alarm topic, its key, the Athena workgroup)."
  type        = string
}

variable "pipelines" {
  description = "What each deployed pipeline has to watch and query, by pipeline key (modules/operations_settings' pipelines)."
  type = map(object({
    name               = string
    glue_database      = string
    tables             = list(string)
    athena_queries     = optional(map(string), {})
    sources            = list(string)
    function_names     = map(string)
    state_machine_arn  = string
    dead_letter_queues = map(string)
  }))
}

variable "functions" {
  description = "Functions outside any pipeline (the demo source), by crate."
  type        = map(string)
  default     = {}
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic; null: no subscription."
  type        = string
  default     = null
}

variable "quarantine_rate_threshold" {
  description = "Alarm when RecordsQuarantined / RecordsIn of a pipeline is above this share."
  type        = number
  default     = 0.05
}

variable "quarantine_rate_period_seconds" {
  description = "Period over which the quarantine rate sums its two metrics."
  type        = number
  default     = 3600
}

variable "bucket_name" {
  description = "Data lake bucket, where Athena writes its query results."
  type        = string
}

variable "athena_results_prefix" {
  description = "Key prefix of the query results in the bucket (data_lake's athena_results_prefix, ending with \"/\")."
  type        = string

  validation {
    condition     = endswith(var.athena_results_prefix, "/")
    error_message = "athena_results_prefix must end with \"/\"."
  }
}

variable "lake_kms_key_arn" {
  description = "Customer managed KMS key of the bucket (null when SSE-S3): the query results are encrypted with it too."
  type        = string
  default     = null
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Bytes a query may scan before the workgroup cancels it."
  type        = number
  default     = 10737418240
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
