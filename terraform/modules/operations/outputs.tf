output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (in ALARM and back to OK)."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Name of each CloudWatch alarm, by key (<pipeline>/<what>, shared/<crate>-<what>)."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "dashboard_names" {
  description = "CloudWatch dashboard of each pipeline."
  value       = { for k, d in aws_cloudwatch_dashboard.pipeline : k => d.dashboard_name }
}

output "athena_workgroup" {
  description = "Athena workgroup of the named queries (results under athena-results/ in the lake bucket)."
  value       = aws_athena_workgroup.lake.name
}

output "athena_named_queries" {
  description = "Athena named query names, by key (<pipeline>/row-counts, <pipeline>/<table>-snapshots, <pipeline>/<name> for pipelines/<pipeline>/athena/<name>.sql)."
  value       = { for k, q in aws_athena_named_query.this : k => q.name }
}

output "metric_contract" {
  description = "The Embedded Metric Format contract the alarms and dashboards read (namespace, dimension sets, metrics and units)."
  value       = module.settings.metric_contract
}
