# State moves of the single-pipeline layout (var.pipeline = "deftunes", everything per pipeline
# at the root) into module.pipeline["deftunes"], so that an existing deployment is moved in
# place, not destroyed and recreated. Its resource names do not change: the pipeline keyed
# var.project keeps them (a deployment whose project is not "deftunes" sets
# pipelines = { deftunes = { name_prefix = "<project>" } } to keep them).

moved {
  from = module.catalog
  to   = module.pipeline["deftunes"].module.catalog
}

moved {
  from = module.api_extract
  to   = module.pipeline["deftunes"].module.api_extract[0]
}

moved {
  from = module.songs_extract
  to   = module.pipeline["deftunes"].module.songs_extract[0]
}

moved {
  from = module.transform
  to   = module.pipeline["deftunes"].module.transform
}

moved {
  from = module.redshift_setup
  to   = module.pipeline["deftunes"].module.redshift_setup
}

moved {
  from = module.orchestration
  to   = module.pipeline["deftunes"].module.orchestration
}

# The dbt task left the shared serving module for the pipeline's dbt_task module.
moved {
  from = module.serving.aws_cloudwatch_log_group.dbt
  to   = module.pipeline["deftunes"].module.dbt_task.aws_cloudwatch_log_group.dbt
}

moved {
  from = module.serving.aws_ecs_task_definition.dbt
  to   = module.pipeline["deftunes"].module.dbt_task.aws_ecs_task_definition.dbt
}

moved {
  from = module.serving.aws_iam_role.dbt_execution
  to   = module.pipeline["deftunes"].module.dbt_task.aws_iam_role.dbt_execution
}

moved {
  from = module.serving.aws_iam_role_policy.dbt_execution
  to   = module.pipeline["deftunes"].module.dbt_task.aws_iam_role_policy.dbt_execution
}

moved {
  from = module.serving.aws_iam_role.dbt_task
  to   = module.pipeline["deftunes"].module.dbt_task.aws_iam_role.dbt_task
}
