output "lake_bucket" {
  description = "Data lake bucket."
  value       = module.data_lake.bucket_name
}

output "lake_uri" {
  description = "LAKE_URI of the functions."
  value       = module.data_lake.lake_uri
}

output "function_names" {
  description = "Lambda function name of each crate (api-emulator only with deploy_demo_source)."
  value = merge(
    {
      "api-extract"    = module.api_extract.function_name
      "songs-extract"  = module.songs_extract.function_name
      "transform"      = module.transform.function_name
      "redshift-setup" = module.redshift_setup.function_name
    },
    { for m in module.api_emulator : "api-emulator" => m.function_name },
  )
}

output "api_base_url" {
  description = "API_BASE_URL of api-extract: api_base_url, else the demo source's function URL."
  value       = local.api_base_url
}

output "demo_source_url" {
  description = "Function URL of the demo source (functions/api-emulator); null unless deploy_demo_source."
  value       = one(aws_lambda_function_url.demo_source[*].function_url)
}

output "state_machine_arn" {
  description = "ARN of the pipeline state machine (start it from the console or `aws stepfunctions start-execution`)."
  value       = module.orchestration.state_machine_arn
}

output "schedule_name" {
  description = "EventBridge Scheduler schedule of the pipeline."
  value       = module.orchestration.schedule_name
}

output "orphan_files_schedule_name" {
  description = "EventBridge Scheduler schedule of transform's orphan file removal."
  value       = module.orchestration.orphan_files_schedule_name
}

output "maintenance_dlq_url" {
  description = "Queue of failed maintenance invocations of transform (alarm on it)."
  value       = module.orchestration.maintenance_dlq_url
}

output "transform_queue_url" {
  description = "SQS queue of landing events feeding transform."
  value       = module.orchestration.transform_queue_url
}

output "transform_dlq_url" {
  description = "Dead-letter queue of landing events."
  value       = module.orchestration.transform_dlq_url
}

output "glue_database" {
  description = "Glue database (Iceberg namespace) of the silver layer."
  value       = module.catalog.database_name
}

output "iceberg_warehouse" {
  description = "Iceberg warehouse URI."
  value       = module.catalog.warehouse_uri
}

output "redshift_workgroup" {
  description = "Redshift Serverless workgroup."
  value       = module.serving.workgroup_name
}

output "redshift_endpoint" {
  description = "Redshift Serverless endpoint host (port 5439), reachable inside the VPC."
  value       = module.serving.endpoint_address
}

output "redshift_port" {
  description = "Redshift Serverless endpoint port."
  value       = module.serving.endpoint_port
}

output "redshift_database" {
  description = "Redshift database."
  value       = module.serving.database_name
}

output "redshift_admin_secret_arn" {
  description = "Secrets Manager secret (username/password JSON) of the Redshift admin."
  value       = module.serving.admin_secret_arn
}

output "spectrum_role_arn" {
  description = "IAM role of the external schema."
  value       = module.serving.spectrum_role_arn
}

output "dbt_ecr_repository_url" {
  description = "ECR repository to push the dbt_modeling image to."
  value       = module.serving.ecr_repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster running the dbt task."
  value       = module.serving.ecs_cluster_name
}

output "dbt_task_definition_arn" {
  description = "dbt task definition (run it by hand with `aws ecs run-task`)."
  value       = module.serving.dbt_task_definition_arn
}
