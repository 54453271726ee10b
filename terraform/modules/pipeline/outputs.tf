output "function_names" {
  description = "Lambda function name of each crate the pipeline deploys (extract functions only where its extracts call them)."
  value = merge(
    {
      "transform"      = module.transform.function_name
      "redshift-setup" = module.redshift_setup.function_name
      "run-control"    = module.run_control.function_name
    },
    { for m in module.api_extract : "api-extract" => m.function_name },
    { for m in module.songs_extract : "songs-extract" => m.function_name },
  )
}

output "glue_database" {
  description = "Glue database (Iceberg namespace) of the pipeline's silver layer."
  value       = module.catalog.database_name
}

output "glue_arns" {
  description = "Glue ARNs of the pipeline's database and tables (the shared Spectrum role reads them)."
  value       = module.catalog.glue_arns
}

output "iceberg_warehouse" {
  description = "Iceberg warehouse URI."
  value       = module.catalog.warehouse_uri
}

output "redshift_schemas" {
  description = "The pipeline's Redshift schemas: external (Spectrum over its Glue database), serving and BI."
  value = {
    external = var.settings.external_schema
    serving  = var.settings.serving_schema
    bi       = var.settings.bi_schema
  }
}

output "state_machine_arn" {
  description = "ARN of the pipeline's state machine."
  value       = module.orchestration.state_machine_arn
}

output "schedule_name" {
  description = "EventBridge Scheduler schedule of the pipeline."
  value       = module.orchestration.schedule_name
}

output "orphan_files_schedule_name" {
  description = "Schedule of transform's orphan file removal."
  value       = module.orchestration.orphan_files_schedule_name
}

output "maintenance_dlq_url" {
  description = "Queue of failed maintenance invocations of transform."
  value       = module.orchestration.maintenance_dlq_url
}

output "transform_queue_url" {
  description = "SQS queue of the pipeline's landing events feeding transform."
  value       = module.orchestration.transform_queue_url
}

output "transform_dlq_url" {
  description = "Dead-letter queue of the pipeline's landing events."
  value       = module.orchestration.transform_dlq_url
}

output "dbt_task_definition_arn" {
  description = "The pipeline's dbt task definition."
  value       = module.dbt_task.task_definition_arn
}

output "transform_dlq_name" {
  description = "Name of the dead-letter queue of the pipeline's landing events."
  value       = module.orchestration.transform_dlq_name
}

output "maintenance_dlq_name" {
  description = "Name of the queue of failed maintenance invocations of transform."
  value       = module.orchestration.maintenance_dlq_name
}
