locals {
  account_id      = data.aws_caller_identity.current.account_id
  partition       = data.aws_partition.current.partition
  glue_arn_prefix = "arn:${local.partition}:glue:${data.aws_region.current.region}:${local.account_id}"
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
    # Every pipeline's Glue database and its tables (one external schema per pipeline).
    resources = concat(
      ["${local.glue_arn_prefix}:catalog"],
      [for db in var.glue_databases : "${local.glue_arn_prefix}:database/${db}"],
      [for db in var.glue_databases : "${local.glue_arn_prefix}:table/${db}/*"],
    )
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
