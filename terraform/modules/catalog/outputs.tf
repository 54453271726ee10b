output "database_name" {
  description = "Glue database (Iceberg namespace) of the silver layer."
  value       = aws_glue_catalog_database.silver.name
}

output "database_arn" {
  description = "ARN of the Glue database."
  value       = aws_glue_catalog_database.silver.arn
}

output "warehouse_uri" {
  description = "ICEBERG_WAREHOUSE: s3://<bucket>/<prefix>transform_zone."
  value       = local.warehouse_uri
}

output "glue_arns" {
  description = "Glue ARNs to scope permissions on the silver layer: catalog, database, tables (wildcard below the database)."
  value = {
    catalog  = "${local.arn_prefix}:catalog"
    database = "${local.arn_prefix}:database/${var.database_name}"
    tables   = "${local.arn_prefix}:table/${var.database_name}/*"
  }
}

output "table_optimizers" {
  description = "Table optimizers created, as <table>-<type>."
  value       = keys(aws_glue_catalog_table_optimizer.this)
}
