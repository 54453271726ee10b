# No provider: this module only computes values, so that terraform/tests can apply it offline.
terraform {
  required_version = ">= 1.11"
}
