variable "bucket_name" {
  description = "Name of the data lake bucket (globally unique)."
  type        = string
}

variable "lake_prefix" {
  description = "Optional key prefix under which every zone lives (\"\" for the bucket root). LAKE_URI becomes s3://<bucket>/<prefix>."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "ARN of a customer managed KMS key for default bucket encryption. null uses SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "landing_expiration_days" {
  description = "Days after which landing_zone/ objects expire (they are re-extractable from the source). 0 disables expiry."
  type        = number
  default     = 90
}

variable "quarantine_expiration_days" {
  description = "Days after which quarantine/ objects expire. 0 disables expiry."
  type        = number
  default     = 180
}

variable "athena_results_expiration_days" {
  description = "Days after which athena-results/ objects (Athena query results) expire. 0 disables expiry."
  type        = number
  default     = 30
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent object versions are deleted (all prefixes)."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket (all versions). Keep false outside demo accounts."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
