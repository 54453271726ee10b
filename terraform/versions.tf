terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.29 adds both resource-policy statements a public function URL needs (demo source).
      version = ">= 6.29, < 7.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Project = var.project }, var.tags)
  }
}
