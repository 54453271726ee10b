variable "pipelines" {
  description = "What each deployed pipeline has to watch and query, keyed by pipeline (the key is the Pipeline dimension of the DeFtunes metrics): its name prefix, Glue database and Iceberg tables (deploy.json), its own Athena queries (pipelines/<key>/athena/<name>.sql rendered: SQL by name), extract sources, function names by crate, state machine ARN and its dead-letter queue names by role (transform, maintenance)."
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

  validation {
    condition     = length(var.pipelines) > 0
    error_message = "pipelines needs at least one pipeline."
  }

  validation {
    condition     = alltrue([for p in values(var.pipelines) : alltrue([for t in p.tables : can(regex("^[a-z_][a-z0-9_]*$", t))])])
    error_message = "Table names must be plain lower-case identifiers ([a-z_][a-z0-9_]*): the named queries quote them as they are."
  }
}

variable "functions" {
  description = "Functions outside any pipeline (the demo source), by crate: alarms on their errors and throttles."
  type        = map(string)
  default     = {}
}

variable "region" {
  description = "Region of the metrics the dashboards show."
  type        = string
}

variable "alarm_arn_prefix" {
  description = "arn:<partition>:cloudwatch:<region>:<account>:alarm: (the dashboards' alarm widgets list alarms by ARN)."
  type        = string
}

variable "alarm_period_seconds" {
  description = "Period of the alarms on service metrics and data quality failures."
  type        = number
  default     = 300
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
