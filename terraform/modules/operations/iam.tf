# ---------------------------------------------------------------- alarm topic's key
# The key policy: the account administers and uses the key through IAM (no wildcard actions:
# the key's administration, the grants SNS makes and the data-key use, listed), and CloudWatch
# alarms of this account encrypt what they publish to the topic. In a key policy, "*" is the
# key itself: the only valid resource (a key policy cannot name its own key's ARN).
data "aws_iam_policy_document" "alarm_key" {
  # A key policy, not an identity policy: its "*" is this key only, and the account statement
  # delegates the key's use to the account's IAM policies (as AWS's default key policy does).
  #checkov:skip=CKV_AWS_109:key policy: "*" is the key itself; administration stays with the account's IAM policies
  #checkov:skip=CKV_AWS_111:key policy: "*" is the key itself; encrypt/decrypt is delegated to the account's IAM policies
  #checkov:skip=CKV_AWS_356:key policy: "*" is the only valid resource and means the key itself
  statement {
    sid = "AccountAdministersTheKey"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListGrants",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    # In a key policy, "*" is the key itself.
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid     = "CloudWatchAlarmsPublish"
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    # In a key policy, "*" is the key itself.
    resources = ["*"]

    # The statement AWS documents for alarms on an encrypted topic, without conditions (SNS calls
    # KMS on the publisher's behalf). The topic's policy below admits only this account's alarms.
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------- alarm topic's policy
# CloudWatch alarms of this account publish; the account's own principals keep what their IAM
# policies grant them (same account).
data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["${local.alarm_arn_prefix}*"]
    }
  }
}
