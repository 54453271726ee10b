# Operating the pipelines: an SNS topic for alarms, the CloudWatch alarms and one dashboard per
# pipeline, and an Athena workgroup with named queries over each pipeline's Iceberg tables. What
# they are (names, metrics, thresholds, dashboard bodies, SQL) is computed by
# modules/operations_settings, without a provider, so that terraform/tests can evaluate it.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition

  alarm_arn_prefix = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:"
}

module "settings" {
  source = "../operations_settings"

  pipelines                      = var.pipelines
  functions                      = var.functions
  region                         = local.region
  alarm_arn_prefix               = local.alarm_arn_prefix
  quarantine_rate_threshold      = var.quarantine_rate_threshold
  quarantine_rate_period_seconds = var.quarantine_rate_period_seconds
}

# ================================================================ alarm topic
# CloudWatch can publish to an encrypted topic only with a customer managed key whose policy lets
# cloudwatch.amazonaws.com use it (the AWS managed key alias/aws/sns cannot be granted).
resource "aws_kms_key" "alarms" {
  description             = "Encrypts the ${var.name} alarm topic (SNS)."
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.alarm_key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  display_name      = "${var.name} alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

# Only with alarm_email: the address receives a confirmation mail first and gets no alarm until
# it confirms.
resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# ================================================================ alarms
resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = module.settings.alarms

  alarm_name          = each.value.alarm_name
  alarm_description   = each.value.description
  comparison_operator = each.value.comparison_operator
  evaluation_periods  = each.value.evaluation_periods
  threshold           = each.value.threshold
  treat_missing_data  = each.value.treat_missing_data

  # A single metric ...
  namespace   = each.value.namespace
  metric_name = each.value.metric_name
  dimensions  = each.value.dimensions
  statistic   = each.value.statistic
  period      = each.value.period

  # ... or metric math (the quarantine rate).
  dynamic "metric_query" {
    for_each = each.value.metric_queries
    content {
      id          = metric_query.value.id
      label       = metric_query.value.label
      expression  = metric_query.value.expression
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]
        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          stat        = metric.value.stat
          period      = metric.value.period
        }
      }
    }
  }

  actions_enabled = true
  alarm_actions   = [aws_sns_topic.alarms.arn]
  ok_actions      = [aws_sns_topic.alarms.arn]

  tags = var.tags
}

# ================================================================ dashboards
resource "aws_cloudwatch_dashboard" "pipeline" {
  for_each = module.settings.dashboards

  dashboard_name = each.value.name
  dashboard_body = each.value.body
}

# ================================================================ Athena
# Athena reads the Iceberg tables through each pipeline's Glue database. Results go to the lake
# bucket under athena-results/ (expired by the bucket's lifecycle), encrypted; the workgroup's
# settings override the client's.
resource "aws_athena_workgroup" "lake" {
  name        = var.name
  description = "Queries over the ${var.name} pipelines' Iceberg tables (Glue databases)."
  state       = "ENABLED"

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${var.bucket_name}/${var.athena_results_prefix}"

      encryption_configuration {
        encryption_option = var.lake_kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.lake_kms_key_arn
      }
    }
  }

  tags = var.tags
}

resource "aws_athena_named_query" "this" {
  for_each = module.settings.named_queries

  name        = each.value.name
  description = each.value.description
  workgroup   = aws_athena_workgroup.lake.id
  database    = each.value.database
  query       = each.value.query
}
