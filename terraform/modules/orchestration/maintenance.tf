# Table maintenance: a daily EventBridge Scheduler schedule invokes transform with
# {"maintenance": "remove_orphan_files", "older_than_hours": N}. Transform lists each Iceberg
# table's data/ and metadata/ under the transform zone and deletes the files that no snapshot
# references and that are older than N hours (Iceberg's remove_orphan_files).
#
# The Scheduler invokes Lambda asynchronously: failures it cannot deliver (throttling past its
# retries, missing permission) and invocations the function fails after Lambda's own retries
# both end in the maintenance DLQ, one queue to alarm on.

resource "aws_sqs_queue" "maintenance_dlq" {
  name                      = "${var.name}-maintenance-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

locals {
  # The schedule's group: its ARN is the aws:SourceArn of the role's trust policy.
  maintenance_schedule_group = "default"
}

resource "aws_scheduler_schedule" "orphan_files" {
  name                         = "${var.name}-remove-orphan-files"
  group_name                   = local.maintenance_schedule_group
  description                  = "Deletes Iceberg files of the transform zone that no snapshot references."
  state                        = var.orphan_files_cleanup_enabled ? "ENABLED" : "DISABLED"
  schedule_expression          = var.orphan_files_schedule_expression
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.function_arns["transform"]
    role_arn = aws_iam_role.maintenance_scheduler.arn
    input = jsonencode({
      maintenance      = "remove_orphan_files"
      older_than_hours = var.orphan_files_older_than_hours
    })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }

    dead_letter_config {
      arn = aws_sqs_queue.maintenance_dlq.arn
    }
  }
}

# Asynchronous invocations of transform (only this schedule makes them): a run that still fails
# after Lambda's retries, or waits in Lambda's queue longer than an hour, goes to the DLQ. A rerun
# is safe: the next one deletes what this one left. Lambda sends with the function's role
# (terraform/iam.tf, statement MaintenanceFailures).
resource "aws_lambda_function_event_invoke_config" "transform" {
  function_name                = var.function_arns["transform"]
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.maintenance_dlq.arn
    }
  }
}

# ---------------------------------------------------------------- maintenance scheduler role
# Its own role: the pipeline schedule's role can only start the state machine, this one can
# only invoke transform (Scheduler uses the role, not the function's resource policy).
data "aws_iam_policy_document" "maintenance_scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    # Scheduler's aws:SourceArn is the schedule group of the schedule, not the schedule.
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule-group/${local.maintenance_schedule_group}"]
    }
  }
}

resource "aws_iam_role" "maintenance_scheduler" {
  name               = "${var.name}-maintenance-scheduler"
  assume_role_policy = data.aws_iam_policy_document.maintenance_scheduler_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "maintenance_scheduler" {
  statement {
    sid       = "InvokeTransform"
    actions   = ["lambda:InvokeFunction"]
    resources = [var.function_arns["transform"]]
  }

  # Scheduler sends undeliverable invocations to the DLQ with this role.
  statement {
    sid       = "MaintenanceDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.maintenance_dlq.arn]
  }
}

resource "aws_iam_role_policy" "maintenance_scheduler" {
  name   = "invoke-transform-maintenance"
  role   = aws_iam_role.maintenance_scheduler.id
  policy = data.aws_iam_policy_document.maintenance_scheduler.json
}
