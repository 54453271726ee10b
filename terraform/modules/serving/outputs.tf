output "namespace_name" {
  description = "Redshift Serverless namespace."
  value       = aws_redshiftserverless_namespace.this.namespace_name
}

output "workgroup_name" {
  description = "Redshift Serverless workgroup (REDSHIFT_WORKGROUP)."
  value       = aws_redshiftserverless_workgroup.this.workgroup_name
}

output "workgroup_arn" {
  description = "ARN of the Redshift Serverless workgroup."
  value       = aws_redshiftserverless_workgroup.this.arn
}

output "endpoint_address" {
  description = "Host name of the Redshift Serverless endpoint."
  value       = aws_redshiftserverless_workgroup.this.endpoint[0].address
}

output "endpoint_port" {
  description = "Port of the Redshift Serverless endpoint (5439)."
  value       = aws_redshiftserverless_workgroup.this.endpoint[0].port
}

output "database_name" {
  description = "Redshift database."
  value       = var.database_name
}

output "admin_secret_arn" {
  description = "Secrets Manager secret (JSON username/password) of the Redshift admin, managed by Redshift."
  value       = local.admin_secret_arn
}

output "spectrum_role_arn" {
  description = "IAM role of the external (Spectrum) schema over the Glue silver database."
  value       = aws_iam_role.spectrum.arn
}

output "ecr_repository_arn" {
  description = "ARN of the ECR repository of the dbt image."
  value       = aws_ecr_repository.dbt.arn
}

output "ecr_repository_url" {
  description = "ECR repository of the dbt image."
  value       = aws_ecr_repository.dbt.repository_url
}

output "ecs_cluster_arn" {
  description = "ECS cluster running the dbt task."
  value       = aws_ecs_cluster.this.arn
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}
