# Variables checkov renders the Terraform with (terraform/tests/run.sh): every opt-in resource,
# dynamic block and conditional statement is switched on, so that it is checked too (a resource
# whose count is 0, or a dynamic block with nothing to iterate, is not scanned).
# terraform/tests/test_workspace.py checks that every opt-in variable is set here.

# Opt-in resources
deploy_demo_source            = true
enable_table_optimizers       = true
dbt_read_only_root_filesystem = true
schedule_enabled              = true

# Conditional KMS statements and encryption settings
lake_kms_key_arn         = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
pg_secret_kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000002"
mysql_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000003"
oauth_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000004"

# A PostgreSQL pipeline (deftunes), a MySQL one (classicmodels) and an OAuth REST one (spotify):
# both engines' statements and the OAuth client secret's render
pipelines = {
  deftunes      = {}
  classicmodels = {}
  spotify = {
    api_base_url            = "https://api.spotify.example.com/"
    oauth_token_url         = "https://accounts.spotify.example.com/api/token"
    oauth_client_id         = "deftunes-catalogue"
    oauth_client_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:spotify-client-AbCdEf"
  }
}
mysql_host       = "classicmodels-db.abcdefghij.us-east-1.rds.amazonaws.com"
mysql_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mysql-db-AbCdEf"

# REST sources: the longest Retry-After waited out (API_RETRY_AFTER_MAX_SECS)
api_retry_after_max_secs = 300

# Required inputs (VPC placement makes the VPC statements and vpc_config render)
pg_host                     = "deftunes-db.abcdefghij.us-east-1.rds.amazonaws.com"
pg_secret_arn               = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-db-AbCdEf"
songs_subnet_ids            = ["subnet-0aaa1111", "subnet-0bbb2222"]
songs_security_group_ids    = ["sg-0songs0000000000"]
redshift_subnet_ids         = ["subnet-0aaa1111", "subnet-0bbb2222", "subnet-0ccc3333"]
redshift_security_group_ids = ["sg-0redshift000000"]
dbt_security_group_ids      = ["sg-0dbt00000000000"]

# Operations: X-Ray permissions and settings, the alarm e-mail subscription
xray_tracing = true
alarm_email  = "ops@example.com"
