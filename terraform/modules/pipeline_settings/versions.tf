# No provider: this module only reads deploy.json files and computes values, so that
# terraform/tests can plan it offline (terraform init needs no provider download).
terraform {
  required_version = ">= 1.11"
}
