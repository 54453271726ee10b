data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id         = data.aws_caller_identity.current.account_id
  dbt_image          = coalesce(var.dbt_image, "${var.ecr_repository_url}:${var.dbt_image_tag}")
  dbt_container_name = "dbt"

  # The only paths dbt writes (dbt_modeling/Dockerfile: the projects under /dbt are read-only
  # for the dbt user, target/ and logs/ belong to it). With a read-only root filesystem each
  # becomes a Fargate bind mount (task storage); DBT_TARGET_PATH / DBT_LOG_PATH point dbt at
  # them, whichever project --project-dir names.
  dbt_writable_paths = {
    dbt-target = "/dbt/target"
    dbt-logs   = "/dbt/logs"
  }
  dbt_path_env = [
    { name = "DBT_TARGET_PATH", value = local.dbt_writable_paths["dbt-target"] },
    { name = "DBT_LOG_PATH", value = local.dbt_writable_paths["dbt-logs"] },
  ]
}

resource "aws_cloudwatch_log_group" "dbt" {
  name              = "/ecs/${var.name}-dbt"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

# One task definition per pipeline, all on the same image: the command names the pipeline's
# dbt project (its deploy.json dbt_project_dir under /dbt), the environment its schemas.
resource "aws_ecs_task_definition" "dbt" {
  family                   = "${var.name}-dbt"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.dbt_cpu
  memory                   = var.dbt_memory
  execution_role_arn       = aws_iam_role.dbt_execution.arn
  task_role_arn            = aws_iam_role.dbt_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.dbt_cpu_architecture
  }

  # Bind mounts (task storage, removed with the task) for the paths dbt writes.
  dynamic "volume" {
    for_each = var.dbt_read_only_root_filesystem ? keys(local.dbt_writable_paths) : []
    content {
      name = volume.value
    }
  }

  container_definitions = jsonencode([
    {
      name      = local.dbt_container_name
      image     = local.dbt_image
      essential = true
      command   = var.dbt_command
      # dbt writes only target/ and logs/. Read-only root with bind mounts there needs an image
      # whose Dockerfile declares them as VOLUMEs owned by the dbt user (a Fargate bind mount is
      # otherwise root-owned 0755, unwritable for the non-root dbt user): see
      # var.dbt_read_only_root_filesystem.
      readonlyRootFilesystem = var.dbt_read_only_root_filesystem
      mountPoints = var.dbt_read_only_root_filesystem ? [
        for name, path in local.dbt_writable_paths : { sourceVolume = name, containerPath = path, readOnly = false }
      ] : []
      environment = concat(local.dbt_path_env, [
        { name = "DBT_TARGET", value = "redshift" },
        { name = "REDSHIFT_HOST", value = var.redshift_host },
        { name = "REDSHIFT_PORT", value = tostring(var.redshift_port) },
        { name = "REDSHIFT_DATABASE", value = var.database_name },
        # Read by the pipeline's dbt project (profiles.yml, dbt_project.yml, models/sources.yml):
        # the schemas its redshift-setup creates and grants.
        { name = "DBT_SOURCE_SCHEMA", value = var.external_schema },
        { name = "DBT_SERVING_SCHEMA", value = var.serving_schema },
        { name = "DBT_BI_SCHEMA", value = var.bi_schema },
      ])
      secrets = [
        { name = "REDSHIFT_USER", valueFrom = "${var.admin_secret_arn}:username::" },
        { name = "REDSHIFT_PASSWORD", valueFrom = "${var.admin_secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.dbt.name
          awslogs-region        = data.aws_region.current.region
          awslogs-stream-prefix = "dbt"
        }
      }
    }
  ])

  tags = var.tags
}
