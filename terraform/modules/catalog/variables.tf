variable "database_name" {
  description = "Glue database of the silver layer (the Iceberg namespace, ICEBERG_NAMESPACE)."
  type        = string
}

variable "bucket_name" {
  description = "Data lake bucket."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the data lake bucket."
  type        = string
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse in the bucket, with trailing slash (e.g. \"transform_zone/\")."
  type        = string
}

variable "enable_table_optimizers" {
  description = "Create Glue table optimizers (compaction, snapshot retention, orphan file deletion) for optimized_tables. The tables are created by the transform function on its first run: enable this on a second apply."
  type        = bool
  default     = false
}

variable "optimized_tables" {
  description = "Iceberg tables of the database that get table optimizers."
  type        = list(string)
  default     = ["users", "sessions", "songs"]
}

variable "snapshot_retention_days" {
  description = "Snapshot retention optimizer: days to keep Iceberg snapshots. The transform's exactly-once record (which landing object and version each snapshot committed) lives in snapshot properties, so snapshots must outlive any redelivery: the transform queue's 4 days plus a redrive from its DLQ (14 days)."
  type        = number
  default     = 21
  validation {
    condition     = var.snapshot_retention_days >= 19
    error_message = "snapshot_retention_days must be at least 19: a redelivered landing event (4 days in the queue + 14 in the DLQ) must still find the snapshot that committed it."
  }
}

variable "snapshots_to_retain" {
  description = "Snapshot retention optimizer: minimum number of snapshots kept."
  type        = number
  default     = 10
}

variable "orphan_file_retention_days" {
  description = "Orphan file deletion optimizer: age after which unreferenced files are deleted."
  type        = number
  default     = 7
}

variable "kms_key_arn" {
  description = "KMS key encrypting the bucket (null when SSE-S3)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
