output "metric_contract" {
  description = "The CloudWatch Embedded Metric Format metrics the functions write and the alarms and dashboards read: namespace, dimension sets and metrics (with units) of transform and of the extracts."
  value       = local.metric_contract
}

output "alarms" {
  description = "CloudWatch alarms by key (<pipeline>/<what>, shared/<crate>-<what> for functions outside the pipelines): name, description, metric or metric math queries, threshold. Each notifies the alarm topic."
  value       = local.alarms

  precondition {
    condition     = length(distinct(local.alarm_names)) == length(local.alarm_names)
    error_message = "Two alarms would have the same name: ${join(", ", sort(local.alarm_names))}."
  }
}

output "dashboards" {
  description = "CloudWatch dashboard of each pipeline: name and body (JSON)."
  value       = local.dashboards

  precondition {
    condition     = length(distinct([for d in values(local.dashboards) : d.name])) == length(local.dashboards)
    error_message = "Two pipelines would have the same dashboard name."
  }
}

output "named_queries" {
  description = "Athena named queries by key (<pipeline>/row-counts, <pipeline>/<table>-snapshots, <pipeline>/<name> for pipelines/<pipeline>/athena/<name>.sql): name, description, Glue database, SQL."
  value       = local.named_queries

  precondition {
    condition     = length(local.named_queries) == local.named_query_count
    error_message = "A pipeline's Athena query (pipelines/<pipeline>/athena/<name>.sql) has the name of a built-in one (row-counts, <table>-snapshots): rename the file."
  }

  precondition {
    condition     = length(distinct([for q in values(local.named_queries) : q.name])) == length(local.named_queries)
    error_message = "Two Athena named queries would have the same name."
  }
}
