data "aws_iam_policy_document" "optimizer_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "optimizer" {
  name               = "${var.database_name}-table-optimizer"
  assume_role_policy = data.aws_iam_policy_document.optimizer_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "optimizer" {
  statement {
    sid     = "IcebergTables"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable"]
    resources = [
      "${local.arn_prefix}:catalog",
      "${local.arn_prefix}:database/${var.database_name}",
      "${local.arn_prefix}:table/${var.database_name}/*",
    ]
  }

  statement {
    sid       = "WarehouseObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
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
    sid     = "OptimizerLogs"
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${local.account_id}:log-group:/aws-glue/iceberg-compaction/logs:*",
      "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${local.account_id}:log-group:/aws-glue/iceberg-retention/logs:*",
      "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${local.account_id}:log-group:/aws-glue/iceberg-orphan-file-deletion/logs:*",
    ]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "LakeKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "optimizer" {
  name   = "table-optimizer-access"
  role   = aws_iam_role.optimizer.id
  policy = data.aws_iam_policy_document.optimizer.json
}
