variable "name" {
  description = "Name prefix of the serving resources (namespace, workgroup, roles, dbt task)."
  type        = string
}

variable "database_name" {
  description = "Redshift database (the first database of the namespace)."
  type        = string
  default     = "dev"
}

variable "admin_username" {
  description = "Redshift admin user; its password is generated and kept in Secrets Manager by Redshift (manage_admin_password)."
  type        = string
  default     = "deftunes_admin"
}

variable "base_capacity" {
  description = "Base RPU capacity of the workgroup (8 is the minimum)."
  type        = number
  default     = 8
}

variable "max_capacity" {
  description = "Upper bound of RPUs the workgroup may scale to (cost guard)."
  type        = number
  default     = 32
}

variable "subnet_ids" {
  description = "Private subnets of the workgroup (Redshift Serverless needs at least three, in different AZs)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the workgroup: allow 5439 from the dbt task's security group."
  type        = list(string)
}

variable "glue_arns" {
  description = "Glue ARNs of the silver layer (catalog, database, tables) from the catalog module."
  type = object({
    catalog  = string
    database = string
    tables   = string
  })
}

variable "bucket_arn" {
  description = "ARN of the data lake bucket."
  type        = string
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse (e.g. \"transform_zone/\")."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the bucket (null when SSE-S3)."
  type        = string
  default     = null
}

variable "external_schema" {
  description = "External (Spectrum) schema of the transform tables: dbt's source schema (DBT_SOURCE_SCHEMA)."
  type        = string
  default     = "deftunes_transform"
}

variable "serving_schema" {
  description = "Schema of the star schema dbt builds (DBT_SERVING_SCHEMA)."
  type        = string
  default     = "deftunes_serving"
}

variable "bi_schema" {
  description = "Schema of the BI views dbt builds (DBT_BI_SCHEMA)."
  type        = string
  default     = "deftunes_bi"
}

variable "dbt_image" {
  description = "Container image of the dbt_modeling project (entrypoint dbt). null uses <ECR repository>:<dbt_image_tag>."
  type        = string
  default     = null
}

variable "dbt_image_tag" {
  description = "Tag of the dbt image in the ECR repository created here (tags are immutable: bump it per build)."
  type        = string
  default     = "0.1.0"
}

variable "dbt_cpu_architecture" {
  description = "CPU architecture of the dbt image (X86_64 or ARM64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.dbt_cpu_architecture)
    error_message = "dbt_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "dbt_read_only_root_filesystem" {
  description = "Run the dbt container with a read-only root filesystem, target/ and logs/ on bind mounts. Needs an image that declares VOLUME [\"/dbt/target\", \"/dbt/logs\"] after giving them to the dbt user (terraform/tests checks the default against dbt_modeling/Dockerfile)."
  type        = bool
  default     = true
}

variable "dbt_command" {
  description = "Command (arguments to the image entrypoint) of the dbt task."
  type        = list(string)
  default     = ["build", "--target", "redshift", "--profiles-dir", "."]
}

variable "dbt_cpu" {
  description = "Fargate CPU units of the dbt task."
  type        = number
  default     = 512
}

variable "dbt_memory" {
  description = "Fargate memory (MB) of the dbt task."
  type        = number
  default     = 1024
}

variable "log_retention_days" {
  description = "Retention of the dbt task's log group."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
