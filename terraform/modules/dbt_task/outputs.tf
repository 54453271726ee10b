output "task_definition_arn" {
  description = "ARN (with revision) of the dbt task definition."
  value       = aws_ecs_task_definition.dbt.arn
}

output "task_definition_family" {
  description = "Family of the dbt task definition."
  value       = aws_ecs_task_definition.dbt.family
}

output "container_name" {
  description = "Container name in the dbt task definition."
  value       = local.dbt_container_name
}

output "role_arns" {
  description = "Execution and task roles of the dbt task (passed by the state machine)."
  value       = [aws_iam_role.dbt_execution.arn, aws_iam_role.dbt_task.arn]
}
