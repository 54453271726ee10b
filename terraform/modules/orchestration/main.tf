data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition

  # The state machine's name and ARN, built from the name rather than read from the resource: its
  # role's policy grants it StartExecution on itself (the Distributed Map's child executions),
  # and the role exists before the state machine (aws_iam_role.state_machine.arn -> cycle).
  state_machine_name = "${var.name}-pipeline"
  state_machine_arn  = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"

  # Every value the state machine template uses; terraform/tests renders the template with
  # the same names.
  definition_vars = {
    # Every deployed function by crate: each extract calls function_arns[<its function>].
    function_arns               = var.function_arns
    transform_function_arn      = var.function_arns["transform"]
    redshift_setup_function_arn = var.function_arns["redshift-setup"]
    # Plans a scheduled run's catch-up windows, and writes each execution's run report.
    run_control_function_arn = var.function_arns["run-control"]
    ecs_cluster_arn          = var.ecs_cluster_arn
    dbt_task_definition_arn  = var.dbt_task_definition_arn
    dbt_container_name       = var.dbt_container_name
    dbt_subnet_ids           = var.dbt_subnet_ids
    dbt_security_group_ids   = var.dbt_security_group_ids
    dbt_assign_public_ip     = var.dbt_assign_public_ip ? "ENABLED" : "DISABLED"
    # One Parallel branch per extract (Extract <source> -> Transform <source>), in this order;
    # none: a files-only pipeline, whose run is Redshift setup and dbt build.
    extracts = var.extracts
    # The windows' Distributed Map: child executions at a time, and where its ResultWriter puts
    # each window's summary (s3://<bucket>/<prefix>/<map run id>/...).
    backfill_max_concurrency = var.backfill_max_concurrency
    map_results_bucket       = var.bucket_name
    map_results_prefix       = var.map_results_prefix
  }
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${var.name}-pipeline"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_sfn_state_machine" "pipeline" {
  name       = local.state_machine_name
  type       = "STANDARD"
  role_arn   = aws_iam_role.state_machine.arn
  definition = templatefile("${path.module}/state_machine.asl.json.tftpl", local.definition_vars)

  # X-Ray (var.xray_tracing): one trace per execution, with the Lambda and ECS calls as segments.
  tracing_configuration {
    enabled = var.xray_tracing
  }

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.state_machine]
}

# Execution data is logged: payloads carry object keys, counts and errors, never secrets.

# Starts the pipeline for the previous period: the target input carries the scheduled time,
# from which the extract function derives the window (WINDOW_GRANULARITY day or month).
resource "aws_scheduler_schedule" "pipeline" {
  name                         = "${var.name}-pipeline"
  description                  = "Runs the pipeline for the previous period (a files-only pipeline: serving over what is committed)."
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sfn_state_machine.pipeline.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ scheduled_time = "<aws.scheduler.scheduled-time>" })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }
  }
}
