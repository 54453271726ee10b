# What the operations module creates, computed without a provider (terraform/tests applies this
# module offline, as it does modules/pipeline_settings): the CloudWatch alarms, one dashboard per
# pipeline and the Athena named queries per pipeline. modules/operations turns them into
# resources, one resource block per kind, with for_each over these values.

locals {
  # ---------------------------------------------------------------- the metric contract
  # The functions write CloudWatch Embedded Metric Format lines in this namespace; the Pipeline
  # dimension is the pipeline's key (its PIPELINE variable, e.g. deftunes, sparkify).
  namespace = "DeFtunes"
  metric_contract = {
    namespace = local.namespace
    # transform: one set of values per landing object, by table.
    transform = {
      dimension_sets = [["Pipeline", "Table"], ["Pipeline"]]
      metrics = {
        RecordsIn           = "Count"
        RecordsCommitted    = "Count"
        RecordsUnchanged    = "Count"
        RecordsQuarantined  = "Count"
        Bytes               = "Bytes"
        DurationMs          = "Milliseconds"
        DatasetRuleFailures = "Count"
      }
    }
    # api-extract and songs-extract: one set of values per extracted source.
    extract = {
      dimension_sets = [["Pipeline", "Source"], ["Pipeline"]]
      metrics = {
        RecordsExtracted = "Count"
        Bytes            = "Bytes"
        DurationMs       = "Milliseconds"
      }
    }
  }

  # Quarantined share of the records in over the period. A period without records in has no
  # value (missing data: not breaching); without quarantined records it is 0.
  quarantine_rate_expression = "IF(m2 > 0, FILL(m1, 0) / m2, 0)"

  # ---------------------------------------------------------------- alarms
  # Every alarm fires on a value above its threshold in one period and is OK again as soon as a
  # period is back under it. Missing data (no messages, no executions, no invocations, no records)
  # is never a breach. terraform/README.md ("Alarms") says what each means and what to do.
  alarm_defaults = {
    evaluation_periods  = 1
    comparison_operator = "GreaterThanThreshold"
    treat_missing_data  = "notBreaching"
  }

  dlq_descriptions = {
    transform   = "Landing events that transform failed 5 times (or that EventBridge could not deliver) are in the dead-letter queue. Read a message, find the failure in the transform logs, fix it, then redrive the queue to the transform queue (SQS console: Start DLQ redrive)."
    maintenance = "The daily orphan file removal failed (after Lambda's retries) or could not be invoked. Read the message and the transform logs. Do not redrive: the next daily run does the same work; purge the queue once the cause is fixed."
  }

  dlq_alarms = merge([
    for k, p in var.pipelines : {
      for role, queue in p.dead_letter_queues : "${k}/${role}-dlq" => merge(local.alarm_defaults, {
        pipeline       = k
        alarm_name     = "${queue}-not-empty"
        description    = "Pipeline ${k}: queue ${queue} holds messages. ${lookup(local.dlq_descriptions, role, "Read the messages and the logs of the function that failed them.")}"
        namespace      = "AWS/SQS"
        metric_name    = "ApproximateNumberOfMessagesVisible"
        dimensions     = { QueueName = queue }
        statistic      = "Maximum"
        period         = var.alarm_period_seconds
        threshold      = 0
        metric_queries = []
      })
    }
  ]...)

  execution_metrics = {
    "executions-failed"    = { metric = "ExecutionsFailed", what = "failed (Pipeline failed or Data quality failed: the execution's error and cause say which step)" }
    "executions-timed-out" = { metric = "ExecutionsTimedOut", what = "timed out" }
    "executions-aborted"   = { metric = "ExecutionsAborted", what = "was stopped (StopExecution)" }
  }

  execution_alarms = merge([
    for k, p in var.pipelines : {
      for suffix, m in local.execution_metrics : "${k}/${suffix}" => merge(local.alarm_defaults, {
        pipeline       = k
        alarm_name     = "${p.name}-pipeline-${suffix}"
        description    = "Pipeline ${k}: an execution of its state machine ${m.what}. Open the execution in the Step Functions console, fix the cause and start it again with the same input (transform appends only the records it does not hold yet)."
        namespace      = "AWS/States"
        metric_name    = m.metric
        dimensions     = { StateMachineArn = p.state_machine_arn }
        statistic      = "Sum"
        period         = var.alarm_period_seconds
        threshold      = 0
        metric_queries = []
      })
    }
  ]...)

  # Every function: the pipelines' (by pipeline and crate) and the shared ones.
  watched_functions = concat(
    flatten([for k, p in var.pipelines : [for crate, name in p.function_names : { key = "${k}/${crate}", pipeline = k, name = name }]]),
    [for crate, name in var.functions : { key = "shared/${crate}", pipeline = "", name = name }],
  )

  function_metrics = {
    errors    = { metric = "Errors", what = "returned errors (a failed invocation; a retried one that then succeeded counts too). Read the function's log group for the error type and cause" }
    throttles = { metric = "Throttles", what = "was throttled (account or reserved concurrency reached). Raise the concurrency quota or lower transform_max_concurrency" }
  }

  function_alarms = merge([
    for f in local.watched_functions : {
      for suffix, m in local.function_metrics : "${f.key}-${suffix}" => merge(local.alarm_defaults, {
        pipeline       = f.pipeline
        alarm_name     = "${f.name}-${suffix}"
        description    = "Function ${f.name} ${m.what}."
        namespace      = "AWS/Lambda"
        metric_name    = m.metric
        dimensions     = { FunctionName = f.name }
        statistic      = "Sum"
        period         = var.alarm_period_seconds
        threshold      = 0
        metric_queries = []
      })
    }
  ]...)

  quality_alarms = {
    for k, p in var.pipelines : "${k}/data-quality" => merge(local.alarm_defaults, {
      pipeline       = k
      alarm_name     = "${p.name}-data-quality-failed"
      description    = "Pipeline ${k}: a dataset-level quality rule failed for a landing object (DatasetRuleFailures). The object was committed; a state machine execution ends in Data quality failed, a message of the landing queue fails (then the DLQ). Read the quality report under quality/ and the source data; fix the source or the rule."
      namespace      = local.namespace
      metric_name    = "DatasetRuleFailures"
      dimensions     = { Pipeline = k }
      statistic      = "Sum"
      period         = var.alarm_period_seconds
      threshold      = 0
      metric_queries = []
    })
  }

  quarantine_alarms = {
    for k, p in var.pipelines : "${k}/quarantine-rate" => merge(local.alarm_defaults, {
      pipeline    = k
      alarm_name  = "${p.name}-quarantine-rate"
      description = "Pipeline ${k}: more than ${var.quarantine_rate_threshold * 100} % of the records in were quarantined over ${var.quarantine_rate_period_seconds / 60} minutes (RecordsQuarantined / RecordsIn). Read the quarantined records under quarantine/ (each entry names its reason) and fix the source or the rules."
      namespace   = null
      metric_name = null
      dimensions  = null
      statistic   = null
      period      = null
      threshold   = var.quarantine_rate_threshold
      metric_queries = [
        {
          id          = "m1"
          label       = "RecordsQuarantined"
          expression  = null
          return_data = false
          metric = {
            namespace   = local.namespace
            metric_name = "RecordsQuarantined"
            dimensions  = { Pipeline = k }
            stat        = "Sum"
            period      = var.quarantine_rate_period_seconds
          }
        },
        {
          id          = "m2"
          label       = "RecordsIn"
          expression  = null
          return_data = false
          metric = {
            namespace   = local.namespace
            metric_name = "RecordsIn"
            dimensions  = { Pipeline = k }
            stat        = "Sum"
            period      = var.quarantine_rate_period_seconds
          }
        },
        {
          id          = "e1"
          label       = "Quarantine rate"
          expression  = local.quarantine_rate_expression
          return_data = true
          metric      = null
        },
      ]
    })
  }

  alarms      = merge(local.dlq_alarms, local.execution_alarms, local.function_alarms, local.quality_alarms, local.quarantine_alarms)
  alarm_names = [for a in values(local.alarms) : a.alarm_name]

  # ---------------------------------------------------------------- dashboards
  # One per pipeline: rows of widgets, each row as wide as the dashboard (24 columns).
  widget_rows = {
    for k, p in var.pipelines : k => concat(
      [[
        {
          type = "text"
          properties = {
            markdown = join("\n", [
              "## Pipeline `${k}`",
              "Glue database `${p.glue_database}` (tables ${join(", ", [for t in p.tables : "`${t}`"])}); state machine `${element(split(":", p.state_machine_arn), length(split(":", p.state_machine_arn)) - 1)}`.",
              "Metrics: namespace `${local.namespace}`, dimension `Pipeline = ${k}`. What each alarm means and what to do: terraform/README.md, *Alarms*.",
            ])
          }
        },
        {
          type = "alarm"
          properties = {
            title  = "Alarms"
            alarms = sort([for a in values(local.alarms) : "${var.alarm_arn_prefix}${a.alarm_name}" if a.pipeline == k])
          }
        },
      ]],
      [[
        {
          type = "metric"
          properties = {
            title   = "Records (transform)"
            region  = var.region
            stat    = "Sum"
            period  = 300
            metrics = [for m in ["RecordsIn", "RecordsCommitted", "RecordsUnchanged", "RecordsQuarantined"] : [local.namespace, m, "Pipeline", k]]
          }
        },
        {
          type = "metric"
          properties = {
            title  = "Quarantine rate (alarm above ${var.quarantine_rate_threshold})"
            region = var.region
            stat   = "Sum"
            period = var.quarantine_rate_period_seconds
            metrics = [
              [{ expression = local.quarantine_rate_expression, label = "RecordsQuarantined / RecordsIn", id = "e1" }],
              [local.namespace, "RecordsQuarantined", "Pipeline", k, { id = "m1", visible = false }],
              [local.namespace, "RecordsIn", "Pipeline", k, { id = "m2", visible = false }],
            ]
            annotations = { horizontal = [{ label = "threshold", value = var.quarantine_rate_threshold }] }
            yAxis       = { left = { min = 0 } }
          }
        },
        {
          type = "metric"
          properties = {
            title   = "Dataset rule failures (alarm above 0)"
            region  = var.region
            stat    = "Sum"
            period  = 300
            metrics = [[local.namespace, "DatasetRuleFailures", "Pipeline", k]]
          }
        },
      ]],
      [[
        for title, m in {
          "Records committed by table"        = { metric = "RecordsCommitted", stat = "Sum" }
          "Records quarantined by table"      = { metric = "RecordsQuarantined", stat = "Sum" }
          "Bytes transformed by table"        = { metric = "Bytes", stat = "Sum" }
          "Transform duration by table (max)" = { metric = "DurationMs", stat = "Maximum" }
          } : {
          type = "metric"
          properties = {
            title   = title
            region  = var.region
            stat    = m.stat
            period  = 300
            metrics = [for t in p.tables : [local.namespace, m.metric, "Pipeline", k, "Table", t, { label = t }]]
          }
        }
      ]],
      # Extracts only for a pipeline that has some (a files-only pipeline has none).
      [
        for _ in(length(p.sources) > 0 ? [1] : []) : [
          for title, m in {
            "Records extracted by source"      = { metric = "RecordsExtracted", stat = "Sum" }
            "Bytes extracted by source"        = { metric = "Bytes", stat = "Sum" }
            "Extract duration by source (max)" = { metric = "DurationMs", stat = "Maximum" }
            } : {
            type = "metric"
            properties = {
              title   = title
              region  = var.region
              stat    = m.stat
              period  = 300
              metrics = [for s in p.sources : [local.namespace, m.metric, "Pipeline", k, "Source", s, { label = s }]]
            }
          }
        ]
      ],
      [[
        for title, m in {
          "Lambda errors"         = { metric = "Errors", stat = "Sum" }
          "Lambda throttles"      = { metric = "Throttles", stat = "Sum" }
          "Lambda duration (max)" = { metric = "Duration", stat = "Maximum" }
          } : {
          type = "metric"
          properties = {
            title   = title
            region  = var.region
            stat    = m.stat
            period  = 300
            metrics = [for crate, name in p.function_names : ["AWS/Lambda", m.metric, "FunctionName", name, { label = crate }]]
          }
        }
      ]],
      [[
        {
          type = "metric"
          properties = {
            title   = "State machine executions"
            region  = var.region
            stat    = "Sum"
            period  = 300
            metrics = [for m in ["ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"] : ["AWS/States", m, "StateMachineArn", p.state_machine_arn]]
          }
        },
        {
          type = "metric"
          properties = {
            title   = "Dead-letter queues (messages visible)"
            region  = var.region
            stat    = "Maximum"
            period  = 300
            metrics = [for role, queue in p.dead_letter_queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue, { label = "${role} DLQ" }]]
          }
        },
      ]],
    )
  }

  dashboards = {
    for k, rows in local.widget_rows : k => {
      name = "${var.pipelines[k].name}-pipeline"
      body = jsonencode({
        widgets = flatten([
          for r, row in rows : [
            for i, w in row : merge(w, { x = i * floor(24 / length(row)), y = r * 6, width = floor(24 / length(row)), height = 6 })
          ]
        ])
      })
    }
  }

  # ---------------------------------------------------------------- Athena named queries
  # Over each pipeline's Iceberg tables, through its Glue database (Athena reads Iceberg
  # natively). The BI views are Redshift views (dbt): Athena does not reach them.
  row_count_queries = {
    for k, p in var.pipelines : "${k}/row-counts" => {
      name        = "${p.name}-row-counts"
      description = "Rows of each Iceberg table of pipeline ${k} (every version of every record: the tables are append-only)."
      database    = p.glue_database
      query = join("\n", concat(
        ["-- Rows of each Iceberg table of pipeline ${k}, Glue database ${p.glue_database}."],
        [join("\nUNION ALL\n", [for t in p.tables : "SELECT '${t}' AS table_name, count(*) AS row_count FROM \"${p.glue_database}\".\"${t}\""])],
        ["ORDER BY table_name"],
      ))
    }
  }

  snapshot_queries = merge([
    for k, p in var.pipelines : {
      for t in p.tables : "${k}/${t}-snapshots" => {
        name        = "${p.name}-${t}-snapshots"
        description = "The latest commits to ${p.glue_database}.${t} (pipeline ${k}): what each snapshot added (summary)."
        database    = p.glue_database
        query = join("\n", [
          "-- The latest 100 snapshots of ${p.glue_database}.${t}: each transform commit of a landing object is one.",
          "SELECT committed_at, snapshot_id, parent_id, operation, summary",
          "FROM \"${p.glue_database}\".\"${t}$snapshots\"",
          "ORDER BY committed_at DESC",
          "LIMIT 100",
        ])
      }
    }
  ]...)

  # The pipeline's own queries, pipelines/<key>/athena/<name>.sql (rendered with its Glue
  # database by modules/pipeline_settings), e.g. classicmodels' sales over its Iceberg tables.
  # The description is the file's first line when it is a comment.
  pipeline_queries = merge([
    for k, p in var.pipelines : {
      for name, sql in p.athena_queries : "${k}/${name}" => {
        name = "${p.name}-${name}"
        description = substr(
          startswith(sql, "--") ? trimspace(trimprefix(split("\n", sql)[0], "--")) : "Query ${name} of pipeline ${k} (pipelines/${k}/athena/${name}.sql).",
          0, 1024,
        )
        database = p.glue_database
        query    = sql
      }
    }
  ]...)

  named_queries = merge(local.row_count_queries, local.snapshot_queries, local.pipeline_queries)
  # A pipeline query named like a built-in one (row-counts, <table>-snapshots) would replace it.
  named_query_count = length(local.row_count_queries) + length(local.snapshot_queries) + length(local.pipeline_queries)
}
