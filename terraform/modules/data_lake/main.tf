locals {
  prefix = var.lake_prefix == "" ? "" : "${trim(var.lake_prefix, "/")}/"
  zones  = ["landing_zone", "transform_zone", "quarantine", "quality"]
}

resource "aws_s3_bucket" "lake" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket = aws_s3_bucket.lake.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  rule {
    id     = "expire-old-landing-data"
    status = var.landing_expiration_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.prefix}landing_zone/"
    }

    expiration {
      days = max(var.landing_expiration_days, 1)
    }
  }

  rule {
    id     = "expire-old-quarantine-data"
    status = var.quarantine_expiration_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.prefix}quarantine/"
    }

    expiration {
      days = max(var.quarantine_expiration_days, 1)
    }
  }

  # Athena query results (the workgroup of modules/operations writes them here): a cache, not data.
  rule {
    id     = "expire-athena-results"
    status = var.athena_results_expiration_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.prefix}athena-results/"
    }

    expiration {
      days = max(var.athena_results_expiration_days, 1)
    }
  }

  depends_on = [aws_s3_bucket_versioning.lake]
}

# S3 -> EventBridge: every object event of the bucket is sent to the default bus; the
# orchestration module's rule keeps only landing_zone/ "Object Created" events.
resource "aws_s3_bucket_notification" "lake" {
  bucket      = aws_s3_bucket.lake.id
  eventbridge = true
}

data "aws_iam_policy_document" "lake" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.lake.arn,
      "${aws_s3_bucket.lake.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = data.aws_iam_policy_document.lake.json

  depends_on = [aws_s3_bucket_public_access_block.lake]
}
