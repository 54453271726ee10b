variable "name" {
  description = "Name prefix of the pipeline's dbt resources (task definition family <name>-dbt, its roles and log group)."
  type        = string
}

variable "ecr_repository_url" {
  description = "URL of the shared ECR repository of the dbt image."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the shared ECR repository of the dbt image (the execution role pulls from it)."
  type        = string
}

variable "redshift_host" {
  description = "Host of the Redshift Serverless endpoint (REDSHIFT_HOST)."
  type        = string
}

variable "redshift_port" {
  description = "Port of the Redshift Serverless endpoint (REDSHIFT_PORT)."
  type        = number
}

variable "database_name" {
  description = "Redshift database (REDSHIFT_DATABASE)."
  type        = string
  default     = "dev"
}

variable "admin_secret_arn" {
  description = "Secrets Manager secret (JSON username/password) of the Redshift admin: REDSHIFT_USER and REDSHIFT_PASSWORD."
  type        = string
}

variable "external_schema" {
  description = "External (Spectrum) schema of the pipeline's transform tables: dbt's source schema (DBT_SOURCE_SCHEMA)."
  type        = string
}

variable "serving_schema" {
  description = "Schema of the star schema dbt builds (DBT_SERVING_SCHEMA)."
  type        = string
}

variable "bi_schema" {
  description = "Schema of the BI views dbt builds (DBT_BI_SCHEMA)."
  type        = string
}

variable "dbt_image" {
  description = "Container image of the dbt projects (entrypoint dbt). null uses <ECR repository>:<dbt_image_tag>."
  type        = string
  default     = null
}

variable "dbt_image_tag" {
  description = "Tag of the dbt image in the ECR repository (tags are immutable: bump it per build)."
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
  description = "Command (arguments to the image entrypoint) of the dbt task: the pipeline's project under /dbt. The default is the Dockerfile's CMD (the deftunes project)."
  type        = list(string)
  default     = ["build", "--target", "redshift", "--project-dir", "/dbt/dbt_modeling", "--profiles-dir", "/dbt/dbt_modeling"]
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
