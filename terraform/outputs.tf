output "lake_bucket" {
  description = "Data lake bucket."
  value       = module.data_lake.bucket_name
}

output "lake_uri" {
  description = "LAKE_URI of the functions."
  value       = module.data_lake.lake_uri
}

output "pipelines" {
  description = "What each pipeline deploys, by pipeline: name prefix, Glue database, Redshift schemas, landing prefixes its transform receives, extracts, dbt project."
  value = {
    for k, s in local.pipelines : k => {
      name_prefix      = s.name
      glue_database    = s.glue_database_name
      external_schema  = s.external_schema
      serving_schema   = s.serving_schema
      bi_schema        = s.bi_schema
      landing_prefixes = s.landing_prefixes
      extracts         = [for e in s.extracts : e.source]
      dbt_project_dir  = s.dbt_project_dir
    }
  }
}

output "function_names" {
  description = "Lambda function name of each crate, by pipeline (api-extract and songs-extract only for pipelines whose extracts call them)."
  value       = { for k, p in module.pipeline : k => p.function_names }
}

output "demo_source_function_name" {
  description = "Function name of the demo source (functions/api-emulator); null unless deploy_demo_source."
  value       = one(module.api_emulator[*].function_name)
}

output "api_base_url" {
  description = "Default API_BASE_URL of api-extract: api_base_url, else the demo source's function URL (a pipeline's api_base_url overrides it)."
  value       = local.api_base_url
}

output "demo_source_url" {
  description = "Function URL of the demo source (functions/api-emulator); null unless deploy_demo_source."
  value       = one(aws_lambda_function_url.demo_source[*].function_url)
}

output "state_machine_arns" {
  description = "ARN of each pipeline's state machine, by pipeline (start it from the console or `aws stepfunctions start-execution`)."
  value       = { for k, p in module.pipeline : k => p.state_machine_arn }
}

output "schedule_names" {
  description = "EventBridge Scheduler schedule of each pipeline."
  value       = { for k, p in module.pipeline : k => p.schedule_name }
}

output "orphan_files_schedule_names" {
  description = "EventBridge Scheduler schedule of each pipeline's orphan file removal (its transform)."
  value       = { for k, p in module.pipeline : k => p.orphan_files_schedule_name }
}

output "maintenance_dlq_urls" {
  description = "Queue of failed maintenance invocations of each pipeline's transform (alarm on them)."
  value       = { for k, p in module.pipeline : k => p.maintenance_dlq_url }
}

output "transform_queue_urls" {
  description = "SQS queue of each pipeline's landing events feeding its transform."
  value       = { for k, p in module.pipeline : k => p.transform_queue_url }
}

output "transform_dlq_urls" {
  description = "Dead-letter queue of each pipeline's landing events."
  value       = { for k, p in module.pipeline : k => p.transform_dlq_url }
}

output "glue_databases" {
  description = "Glue database (Iceberg namespace) of each pipeline's silver layer."
  value       = { for k, p in module.pipeline : k => p.glue_database }
}

output "iceberg_warehouse" {
  description = "Iceberg warehouse URI (shared: each Glue database is a folder <database>.db in it)."
  value       = "s3://${module.data_lake.bucket_name}/${trimsuffix(local.zones["transform_zone"], "/")}"
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
  description = "IAM role of the external schemas."
  value       = module.serving.spectrum_role_arn
}

output "dbt_ecr_repository_url" {
  description = "ECR repository to push the dbt image to (one image, every pipeline's dbt project)."
  value       = module.serving.ecr_repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster running the dbt tasks."
  value       = module.serving.ecs_cluster_name
}

output "dbt_task_definition_arns" {
  description = "dbt task definition of each pipeline (run one by hand with `aws ecs run-task`)."
  value       = { for k, p in module.pipeline : k => p.dbt_task_definition_arn }
}

output "alarm_topic_arn" {
  description = "SNS topic (KMS-encrypted) every alarm notifies, in ALARM and back to OK: subscribe e-mail (alarm_email), chat or paging to it."
  value       = module.operations.alarm_topic_arn
}

output "alarm_names" {
  description = "Name of each CloudWatch alarm, by key (<pipeline>/<what>; shared/<crate>-<what> for the demo source)."
  value       = module.operations.alarm_names
}

output "dashboard_names" {
  description = "CloudWatch dashboard of each pipeline (<name prefix>-pipeline)."
  value       = module.operations.dashboard_names
}

output "athena_workgroup" {
  description = "Athena workgroup (engine version 3) of the named queries over each pipeline's Iceberg tables."
  value       = module.operations.athena_workgroup
}

output "athena_named_queries" {
  description = "Athena named queries, by key (<pipeline>/row-counts, <pipeline>/<table>-snapshots, <pipeline>/<name> for pipelines/<pipeline>/athena/<name>.sql)."
  value       = module.operations.athena_named_queries
}

output "metric_contract" {
  description = "The CloudWatch Embedded Metric Format metrics the functions write and the data alarms and dashboards read: namespace DeFtunes, dimension sets and metrics (with units) of transform and of the extracts."
  value       = module.operations.metric_contract
}
