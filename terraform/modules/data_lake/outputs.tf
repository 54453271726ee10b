output "bucket_name" {
  description = "Name of the data lake bucket."
  value       = aws_s3_bucket.lake.id
}

output "bucket_arn" {
  description = "ARN of the data lake bucket."
  value       = aws_s3_bucket.lake.arn
}

output "key_prefix" {
  description = "Key prefix of every zone (\"\" or \"<prefix>/\")."
  value       = local.prefix
}

output "lake_uri" {
  description = "LAKE_URI setting of the functions: s3://<bucket> or s3://<bucket>/<prefix> (no trailing slash)."
  value       = local.prefix == "" ? "s3://${aws_s3_bucket.lake.id}" : "s3://${aws_s3_bucket.lake.id}/${trimsuffix(local.prefix, "/")}"
}

output "zone_prefixes" {
  description = "Key prefix of each zone, e.g. landing_zone = \"landing_zone/\"."
  value       = { for z in local.zones : z => "${local.prefix}${z}/" }
}

output "kms_key_arn" {
  description = "KMS key encrypting the bucket (null when SSE-S3)."
  value       = var.kms_key_arn
}

output "athena_results_prefix" {
  description = "Key prefix of Athena's query results (outside the zones: no function reads or writes it)."
  value       = "${local.prefix}athena-results/"
}
