# ---------------------------------------------------------------- dbt task roles
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "dbt_execution" {
  name               = "${var.name}-dbt-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "dbt_execution" {
  # ecr:GetAuthorizationToken supports no resource-level permissions: "*" is the only valid resource.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullDbtImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "WriteDbtLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dbt.arn}:*"]
  }

  statement {
    sid       = "ReadRedshiftCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.admin_secret_arn]
  }
}

resource "aws_iam_role_policy" "dbt_execution" {
  name   = "dbt-task-execution"
  role   = aws_iam_role.dbt_execution.id
  policy = data.aws_iam_policy_document.dbt_execution.json
}

# The dbt container calls no AWS API (it connects to Redshift with the secret injected by
# ECS): its task role has no policy.
resource "aws_iam_role" "dbt_task" {
  name               = "${var.name}-dbt-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}
