data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  arn_prefix    = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.region}:${local.account_id}"
  warehouse_uri = "s3://${var.bucket_name}/${trimsuffix(var.warehouse_prefix, "/")}"

  optimizer_types = var.enable_table_optimizers ? ["compaction", "retention", "orphan_file_deletion"] : []
  optimizers = {
    for pair in setproduct(var.optimized_tables, local.optimizer_types) : "${pair[0]}-${pair[1]}" => {
      table = pair[0]
      type  = pair[1]
    }
  }
}

resource "aws_glue_catalog_database" "silver" {
  name         = var.database_name
  description  = "DeFtunes silver layer: Iceberg tables written by the transform function."
  location_uri = "${local.warehouse_uri}/${var.database_name}.db"
  tags         = var.tags
}

resource "aws_glue_catalog_table_optimizer" "this" {
  for_each = local.optimizers

  catalog_id    = local.account_id
  database_name = aws_glue_catalog_database.silver.name
  table_name    = each.value.table
  type          = each.value.type

  configuration {
    role_arn = aws_iam_role.optimizer.arn
    enabled  = true

    dynamic "compaction_configuration" {
      for_each = each.value.type == "compaction" ? [1] : []
      content {
        iceberg_configuration {
          strategy = "binpack"
        }
      }
    }

    dynamic "retention_configuration" {
      for_each = each.value.type == "retention" ? [1] : []
      content {
        iceberg_configuration {
          snapshot_retention_period_in_days = var.snapshot_retention_days
          number_of_snapshots_to_retain     = var.snapshots_to_retain
          clean_expired_files               = true
        }
      }
    }

    dynamic "orphan_file_deletion_configuration" {
      for_each = each.value.type == "orphan_file_deletion" ? [1] : []
      content {
        iceberg_configuration {
          orphan_file_retention_period_in_days = var.orphan_file_retention_days
        }
      }
    }
  }
}
