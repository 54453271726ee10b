# IAM statements of each of the pipeline's function roles, beyond writing its own logs (added
# by the lambda_function module). Extracts write only the landing folders of the pipeline's
# sources they extract (deploy.json), the transform reads only its pipeline's landing folders. Plain literals, so that terraform/tests can check them:
# no wildcard actions; resource wildcards only below a prefix; "*" only for APIs that
# support no resource-level permissions.
locals {
  function_statements = {
    "api-extract" = [
      {
        sid        = "WriteApiLanding"
        actions    = ["s3:PutObject", "s3:DeleteObject"]
        resources  = [for landing_prefix in var.settings.extract_landing["api-extract"] : "${local.bucket_arn}/${landing_prefix}*"]
        conditions = []
      },
      {
        sid       = "ListApiLanding"
        actions   = ["s3:ListBucket"]
        resources = [local.bucket_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values   = [for landing_prefix in var.settings.extract_landing["api-extract"] : "${landing_prefix}*"]
        }]
      },
    ]
    "songs-extract" = [
      {
        sid        = "WriteSongsLanding"
        actions    = ["s3:PutObject", "s3:DeleteObject"]
        resources  = [for landing_prefix in var.settings.extract_landing["songs-extract"] : "${local.bucket_arn}/${landing_prefix}*"]
        conditions = []
      },
      {
        # Watermarks of incremental sources: read at the start of a run, written after it.
        sid        = "ExtractState"
        actions    = ["s3:GetObject", "s3:PutObject"]
        resources  = ["${local.bucket_arn}/${var.settings.state_prefix}*"]
        conditions = []
      },
      {
        # Listing the state folder too: a missing watermark then reads as 404, not 403.
        sid       = "ListSongsLanding"
        actions   = ["s3:ListBucket"]
        resources = [local.bucket_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values   = concat([for landing_prefix in var.settings.extract_landing["songs-extract"] : "${landing_prefix}*"], ["${var.settings.state_prefix}*"])
        }]
      },
    ]
    "transform" = [
      {
        sid = "SilverTables"
        actions = [
          "glue:GetDatabase",
          "glue:GetTable",
          "glue:GetTables",
          "glue:CreateTable",
          "glue:UpdateTable",
        ]
        resources = [
          module.catalog.glue_arns.catalog,
          module.catalog.glue_arns.database,
          module.catalog.glue_arns.tables,
        ]
        conditions = []
      },
      {
        # Its own sources' landing folders only: the objects its rule delivers.
        sid        = "ReadLanding"
        actions    = ["s3:GetObject", "s3:GetObjectVersion"]
        resources  = [for landing_prefix in var.settings.landing_prefixes : "${local.bucket_arn}/${landing_prefix}*"]
        conditions = []
      },
      {
        sid     = "WriteWarehouse"
        actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        resources = [
          "${local.bucket_arn}/${local.zones["transform_zone"]}*",
        ]
        conditions = []
      },
      {
        sid     = "WriteQuarantineAndQuality"
        actions = ["s3:GetObject", "s3:PutObject"]
        resources = [
          "${local.bucket_arn}/${local.zones["quarantine"]}*",
          "${local.bucket_arn}/${local.zones["quality"]}*",
        ]
        conditions = []
      },
      {
        sid       = "ListLakeZones"
        actions   = ["s3:ListBucket"]
        resources = [local.bucket_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values = [
            "${local.zones["landing_zone"]}*",
            "${local.zones["transform_zone"]}*",
            "${local.zones["quarantine"]}*",
            "${local.zones["quality"]}*",
          ]
        }]
      },
      {
        sid = "ConsumeLandingQueue"
        actions = [
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes",
        ]
        resources  = [module.orchestration.transform_queue_arn]
        conditions = []
      },
      {
        # Lambda sends a failed asynchronous invocation (the orphan file maintenance) to its
        # on-failure destination with the function's role.
        sid        = "MaintenanceFailures"
        actions    = ["sqs:SendMessage"]
        resources  = [module.orchestration.maintenance_dlq_arn]
        conditions = []
      },
    ]
    "run-control" = [
      {
        # Each execution's report.json and report.html, under <reports_prefix>/<execution name>/.
        sid        = "WriteRunReports"
        actions    = ["s3:GetObject", "s3:PutObject"]
        resources  = ["${local.bucket_arn}/${var.settings.reports_prefix}/*"]
        conditions = []
      },
      {
        # The catch-up frontier: read by every plan, written after a successful run.
        sid        = "CatchUpFrontier"
        actions    = ["s3:GetObject", "s3:PutObject"]
        resources  = ["${local.bucket_arn}/${var.settings.state_prefix}last-successful-window.json"]
        conditions = []
      },
      {
        # What it reads and may find missing: the frontier (a first deployment has none), its
        # report (an event retried after a lost answer finds it), the quality reports. With this
        # a missing object reads as 404 (absent), not 403 (an error), as for songs-extract's
        # watermarks.
        sid       = "FindRunControlObjects"
        actions   = ["s3:ListBucket"]
        resources = [local.bucket_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values = [
            "${var.settings.state_prefix}last-successful-window.json",
            "${var.settings.reports_prefix}/*",
            "${local.zones["quality"]}*",
          ]
        }]
      },
      {
        # Read only: the rows of each of the pipeline's tables (their current snapshot).
        sid     = "ReadSilverTables"
        actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables"]
        resources = [
          module.catalog.glue_arns.catalog,
          module.catalog.glue_arns.database,
          module.catalog.glue_arns.tables,
        ]
        conditions = []
      },
      {
        # The tables' Iceberg metadata, below transform_zone/ as transform's grants are.
        sid        = "ReadTableMetadata"
        actions    = ["s3:GetObject"]
        resources  = ["${local.bucket_arn}/${local.zones["transform_zone"]}*"]
        conditions = []
      },
      {
        # The dataset rules' results of the run's objects: transform's reports under quality/.
        sid        = "ReadQualityReports"
        actions    = ["s3:GetObject"]
        resources  = ["${local.bucket_arn}/${local.zones["quality"]}*"]
        conditions = []
      },
    ]
  }

  # The Data API statements of each function that runs SQL in Redshift: redshift-setup (its schemas
  # and grants) and run-control (the BI charts of its run reports). Both call ExecuteStatement,
  # DescribeStatement and CancelStatement (shared/src/serving/redshift.rs); only run-control reads
  # the rows of its statements (GetStatementResult). REDSHIFT_SECRET_ARN is always set (main.tf),
  # so the Data API authenticates with the admin secret: no redshift-serverless:GetCredentials.
  # Same sids for both: each function's role has its own policy.
  redshift_data_statements = {
    for function, own_statement_actions in {
      "redshift-setup" = ["redshift-data:DescribeStatement", "redshift-data:CancelStatement"]
      "run-control"    = ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"]
      } : function => [
      {
        sid        = "RunStatements"
        actions    = ["redshift-data:ExecuteStatement"]
        resources  = [var.redshift_workgroup_arn]
        conditions = []
      },
      {
        # The Data API reads the admin secret with the caller's permissions.
        sid        = "AdminSecret"
        actions    = ["secretsmanager:GetSecretValue"]
        resources  = [var.redshift_admin_secret_arn]
        conditions = []
      },
      {
        # These statement APIs support no resource-level permissions: "*" is the only valid
        # resource; the condition limits them to statements this role started.
        sid        = "OwnStatements"
        actions    = own_statement_actions
        resources  = ["*"]
        conditions = [{ test = "StringEquals", variable = "redshift-data:statement-owner-iam-userid", values = ["$${aws:userid}"] }]
      },
    ]
  }

  # run-control reads the windows' results the Distributed Map wrote (a pipeline with extracts:
  # a files-only one has no Map).
  map_results_read_statements = length(var.settings.extracts) > 0 ? [{
    sid        = "ReadMapResults"
    actions    = ["s3:GetObject"]
    resources  = ["${local.bucket_arn}/${var.settings.map_results_prefix}/*"]
    conditions = []
  }] : []

  # kms statements appended to every role that reads or writes the lake.
  lake_kms_statements = var.lake_kms_key_arn == null ? [] : [{
    sid        = "LakeKey"
    actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources  = [var.lake_kms_key_arn]
    conditions = []
  }]

  # songs-extract reads the secret of each engine its SQL sources use, and only these.
  pg_secret_statements = local.uses_postgres ? [{
    sid        = "ReadDatabasePassword"
    actions    = ["secretsmanager:GetSecretValue"]
    resources  = [var.settings.pg_secret_arn]
    conditions = []
  }] : []

  mysql_secret_statements = local.uses_mysql ? [{
    sid        = "ReadMysqlPassword"
    actions    = ["secretsmanager:GetSecretValue"]
    resources  = [var.settings.mysql_secret_arn]
    conditions = []
  }] : []

  # api-extract reads the OAuth client secret of its pipeline, only with an OAuth REST source.
  oauth_secret_statements = local.uses_oauth ? [{
    sid        = "ReadOauthClientSecret"
    actions    = ["secretsmanager:GetSecretValue"]
    resources  = [var.settings.oauth_client_secret_arn]
    conditions = []
  }] : []

  oauth_secret_kms_statements = var.settings.oauth_secret_kms_key_arn == null ? [] : local.uses_oauth ? [{
    sid        = "DecryptOauthClientSecret"
    actions    = ["kms:Decrypt"]
    resources  = [var.settings.oauth_secret_kms_key_arn]
    conditions = []
  }] : []

  pg_secret_kms_statements = var.pg_secret_kms_key_arn == null ? [] : local.uses_postgres ? [{
    sid        = "DecryptDatabasePassword"
    actions    = ["kms:Decrypt"]
    resources  = [var.pg_secret_kms_key_arn]
    conditions = []
  }] : []

  mysql_secret_kms_statements = var.mysql_secret_kms_key_arn == null ? [] : local.uses_mysql ? [{
    sid        = "DecryptMysqlPassword"
    actions    = ["kms:Decrypt"]
    resources  = [var.mysql_secret_kms_key_arn]
    conditions = []
  }] : []
}
