variable "name" {
  description = "Name prefix of the shared serving resources (namespace, workgroup, Spectrum role, ECR repository, ECS cluster)."
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

variable "glue_databases" {
  description = "Glue database (silver layer) of every pipeline: the Spectrum role reads them and their tables."
  type        = list(string)
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

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
