output "state_machine_arn" {
  description = "ARN of the pipeline state machine."
  value       = aws_sfn_state_machine.pipeline.arn
}

output "state_machine_name" {
  description = "Name of the pipeline state machine."
  value       = aws_sfn_state_machine.pipeline.name
}

output "transform_queue_url" {
  description = "SQS queue of landing-zone object-created events feeding transform."
  value       = aws_sqs_queue.transform.id
}

output "transform_queue_arn" {
  description = "ARN of the transform queue."
  value       = aws_sqs_queue.transform.arn
}

output "transform_dlq_url" {
  description = "Dead-letter queue of the transform queue (redrive from the console after a fix)."
  value       = aws_sqs_queue.transform_dlq.id
}

output "schedule_name" {
  description = "EventBridge Scheduler schedule starting the pipeline."
  value       = aws_scheduler_schedule.pipeline.name
}

output "orphan_files_schedule_name" {
  description = "EventBridge Scheduler schedule invoking transform's orphan file removal."
  value       = aws_scheduler_schedule.orphan_files.name
}

output "maintenance_dlq_arn" {
  description = "ARN of the queue of failed maintenance invocations (Scheduler dead letters and transform's asynchronous on-failure destination)."
  value       = aws_sqs_queue.maintenance_dlq.arn
}

output "maintenance_dlq_url" {
  description = "Queue of failed maintenance invocations: alarm on its ApproximateNumberOfMessagesVisible."
  value       = aws_sqs_queue.maintenance_dlq.id
}

output "transform_dlq_name" {
  description = "Name of the dead-letter queue of the landing events (its CloudWatch QueueName dimension)."
  value       = aws_sqs_queue.transform_dlq.name
}

output "maintenance_dlq_name" {
  description = "Name of the queue of failed maintenance invocations (its CloudWatch QueueName dimension)."
  value       = aws_sqs_queue.maintenance_dlq.name
}
