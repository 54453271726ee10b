data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

# Shared by every pipeline: Redshift Serverless (one namespace and workgroup; each pipeline has
# its own schemas in it), the Spectrum role over every pipeline's Glue database, the ECR
# repository of the one dbt image and the ECS cluster. Each pipeline's dbt task definition is
# modules/dbt_task, instantiated by modules/pipeline.
locals {
  admin_secret_arn = aws_redshiftserverless_namespace.this.admin_password_secret_arn
}

# ---------------------------------------------------------------- Redshift Serverless
resource "aws_redshiftserverless_namespace" "this" {
  namespace_name        = var.name
  db_name               = var.database_name
  admin_username        = var.admin_username
  manage_admin_password = true
  iam_roles             = [aws_iam_role.spectrum.arn]
  default_iam_role_arn  = aws_iam_role.spectrum.arn
  log_exports           = ["userlog", "connectionlog", "useractivitylog"]
  tags                  = var.tags
}

resource "aws_redshiftserverless_workgroup" "this" {
  namespace_name       = aws_redshiftserverless_namespace.this.namespace_name
  workgroup_name       = var.name
  base_capacity        = var.base_capacity
  max_capacity         = var.max_capacity
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  publicly_accessible  = false
  enhanced_vpc_routing = true
  tags                 = var.tags
}

# ---------------------------------------------------------------- dbt runner (ECS Fargate): repository and cluster
resource "aws_ecr_repository" "dbt" {
  name                 = "${var.name}-dbt"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }

  tags = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}
