variable "function_name" {
  description = "Name of the Lambda function (also names its role and log group)."
  type        = string
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = ""
}

variable "package_path" {
  description = "Path of the cargo-lambda zip (target/lambda/<crate>/bootstrap.zip), built by `make lambda-build`."
  type        = string
}

variable "memory_size" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
  default     = 512
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 300
}

variable "ephemeral_storage_size" {
  description = "Size of /tmp in MB (spool space for parts before upload)."
  type        = number
  default     = 512
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency; -1 leaves the function unreserved (new accounts often cannot reserve any)."
  type        = number
  default     = -1
}

variable "environment" {
  description = "Environment variables of the function (documented in functions/<crate>/README.md)."
  type        = map(string)
  default     = {}
}

variable "optional_environment" {
  description = "More environment variables, each left out when its value is null (e.g. the connection settings of a source engine the function's pipeline does not use). Their values must be known at plan time: an unknown one would make the whole environment unknown."
  type        = map(string)
  default     = {}
}

variable "policy_statements" {
  description = "IAM statements of the function's role beyond logging: list of {sid, actions, resources, conditions = [{test, variable, values}]}."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []
}

variable "vpc_subnet_ids" {
  description = "Subnets to run the function in (empty: no VPC)."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function when it runs in a VPC."
  type        = list(string)
  default     = []
}

variable "xray_tracing" {
  description = "Active X-Ray tracing of the function, and the role's permission to send the traces."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Application log level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL)."
  type        = string
  default     = "INFO"
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
