# ---------------------------------------------------------------- state machine role
data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${var.name}-pipeline-states"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid     = "InvokePipelineFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = concat(
      values(var.function_arns),
      [for arn in values(var.function_arns) : "${arn}:*"],
    )
  }

  statement {
    sid       = "RunDbtTask"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.dbt_task_definition_family}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.ecs_cluster_arn]
    }
  }

  statement {
    sid       = "TrackDbtTask"
    actions   = ["ecs:StopTask", "ecs:DescribeTasks"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${element(split("/", var.ecs_cluster_arn), 1)}/*"]
  }

  statement {
    sid       = "PassDbtRoles"
    actions   = ["iam:PassRole"]
    resources = var.dbt_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # The .sync ECS integration is driven by this managed rule.
  statement {
    sid       = "EcsSyncRule"
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForECSTaskRule"]
  }

  # The windows' Distributed Map (pipelines with extracts): each window is a child execution of
  # this state machine (StartExecution on itself), which Step Functions tracks and stops
  # (execution:<name>/<label>:<id>, the children only). The ARN is built from the name
  # (local.state_machine_arn): the resource's own arn here would be a cycle.
  dynamic "statement" {
    for_each = length(var.extracts) > 0 ? [1] : []
    content {
      sid       = "StartWindowExecutions"
      actions   = ["states:StartExecution"]
      resources = [local.state_machine_arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.extracts) > 0 ? [1] : []
    content {
      sid       = "TrackWindowExecutions"
      actions   = ["states:DescribeExecution", "states:StopExecution"]
      resources = ["arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}/*"]
    }
  }

  # After a failed Map Run (States.ExceedToleratedFailureThreshold), "Find the failed window"
  # lists the Map Runs of its own execution and the failed child executions of that Map Run, then
  # describes the child (TrackWindowExecutions) to end the run with the window's own error.
  dynamic "statement" {
    for_each = length(var.extracts) > 0 ? [1] : []
    content {
      sid     = "FindFailedWindow"
      actions = ["states:ListMapRuns", "states:ListExecutions"]
      resources = [
        "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}:*",
        "arn:${local.partition}:states:${local.region}:${local.account_id}:mapRun:${local.state_machine_name}/*",
      ]
    }
  }

  # The Distributed Map's ResultWriter: each run's manifest and result files below its prefix
  # (the policy AWS documents for ResultWriter, scoped to that prefix).
  dynamic "statement" {
    for_each = length(var.extracts) > 0 ? [1] : []
    content {
      sid       = "WriteMapResults"
      actions   = ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"]
      resources = ["arn:${local.partition}:s3:::${var.bucket_name}/${var.map_results_prefix}/*"]
    }
  }

  # A lake encrypted with a customer managed key (lake_kms_key_arn): the result files are
  # encrypted with it.
  dynamic "statement" {
    for_each = length(var.extracts) > 0 && var.kms_key_arn != null ? [1] : []
    content {
      sid       = "MapResultsKey"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }

  # CloudWatch Logs vended-log delivery APIs support no resource-level permissions: "*" is
  # the only valid resource (AWS documents exactly this policy for Step Functions logging).
  statement {
    sid = "VendedLogDelivery"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  # X-Ray tracing (xray_tracing): the policy AWS documents for Step Functions. These X-Ray
  # actions support no resource-level permissions: "*" is the only valid resource.
  dynamic "statement" {
    for_each = var.xray_tracing ? [1] : []
    content {
      sid       = "XRayTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "pipeline-integrations"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

# ---------------------------------------------------------------- scheduler role
data "aws_iam_policy_document" "scheduler_assume" {
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
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-pipeline-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "StartPipeline"
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.pipeline.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "start-pipeline"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
