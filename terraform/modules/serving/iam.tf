locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# ---------------------------------------------------------------- Spectrum role (external schema)
data "aws_iam_policy_document" "spectrum_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "spectrum" {
  name               = "${var.name}-spectrum"
  assume_role_policy = data.aws_iam_policy_document.spectrum_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "spectrum" {
  statement {
    sid = "ReadSilverCatalog"
    actions = [
      "glue:GetDatabase",
      "glue:GetDatabases",
      "glue:GetTable",
      "glue:GetTables",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
    ]
    resources = [var.glue_arns.catalog, var.glue_arns.database, var.glue_arns.tables]
  }

  statement {
    sid       = "ReadWarehouseObjects"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${var.warehouse_prefix}*"]
  }

  statement {
    sid       = "ListWarehouse"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.warehouse_prefix}*"]
    }
  }

  statement {
    sid       = "LocateBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "LakeKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "spectrum" {
  name   = "spectrum-read-silver"
  role   = aws_iam_role.spectrum.id
  policy = data.aws_iam_policy_document.spectrum.json
}

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
    resources = [aws_ecr_repository.dbt.arn]
  }

  statement {
    sid       = "WriteDbtLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dbt.arn}:*"]
  }

  statement {
    sid       = "ReadRedshiftCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.admin_secret_arn]
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
