# S3 (EventBridge notifications) -> rule on the pipeline's landing prefixes -> SQS (DLQ) -> transform.
# Each pipeline has its own rule and queue: its transform receives only its own objects.

resource "aws_sqs_queue" "transform_dlq" {
  name                      = "${var.name}-transform-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "transform" {
  name                       = "${var.name}-transform"
  visibility_timeout_seconds = min(6 * var.transform_timeout, 43200)
  message_retention_seconds  = 345600
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.transform_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "transform_dlq" {
  queue_url = aws_sqs_queue.transform_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.transform.arn]
  })
}

resource "aws_cloudwatch_event_rule" "landing_object_created" {
  name        = "${var.name}-landing-object-created"
  description = "Objects created under ${join(", ", var.landing_prefixes)} of ${var.bucket_name}."

  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["Object Created"]
    detail = {
      bucket = { name = [var.bucket_name] }
      # Any of the pipeline's landing prefixes (EventBridge ORs the values of a list).
      object = { key = [for p in var.landing_prefixes : { prefix = p }] }
    }
  })

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "transform_queue" {
  rule      = aws_cloudwatch_event_rule.landing_object_created.name
  target_id = "transform-queue"
  arn       = aws_sqs_queue.transform.arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.transform_dlq.arn
  }
}

data "aws_iam_policy_document" "transform_queue" {
  statement {
    sid       = "EventBridgeLandingRule"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.transform.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.landing_object_created.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "transform" {
  queue_url = aws_sqs_queue.transform.id
  policy    = data.aws_iam_policy_document.transform_queue.json
}

# Events EventBridge could not deliver to the queue land in the same DLQ.
data "aws_iam_policy_document" "transform_dlq" {
  statement {
    sid       = "EventBridgeUndeliverable"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.transform_dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.landing_object_created.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "transform_dlq" {
  queue_url = aws_sqs_queue.transform_dlq.id
  policy    = data.aws_iam_policy_document.transform_dlq.json
}

resource "aws_lambda_event_source_mapping" "transform" {
  event_source_arn                   = aws_sqs_queue.transform.arn
  function_name                      = var.function_arns["transform"]
  batch_size                         = var.transform_batch_size
  maximum_batching_window_in_seconds = var.transform_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.transform_max_concurrency
  }

  tags = var.tags
}
