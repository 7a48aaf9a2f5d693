# The prod environment: its own root, its own state, its own values.
#
# The state key is written in the backend block below, not passed at init,
# so this folder cannot be initialised onto another environment's state by
# picking the wrong backend file; only the bucket (and, outside eu-west-1,
# the region) comes from -backend-config. A deliberate
# -backend-config=key=... override is caught by the guard resource below.
# Everything else is the module ../../modules/environment, the same code for
# dev and prod.

terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  backend "s3" {
    key          = "prod/terraform.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    use_lockfile = true
  }
}

locals {
  environment = "prod"
  aws_region  = "eu-west-1"
}

provider "aws" {
  region = local.aws_region

  default_tags {
    tags = {
      Project     = "kantox-challenge"
      Environment = local.environment
      ManagedBy   = "terraform"
    }
  }
}

# This state belongs to prod. Planning another environment's configuration
# against it would have to replace this object, which prevent_destroy
# refuses: the plan fails before anything is changed. (To destroy the
# environment on purpose: terraform state rm terraform_data.environment_guard.)
resource "terraform_data" "environment_guard" {
  triggers_replace = local.environment

  lifecycle {
    prevent_destroy = true
  }
}

module "environment" {
  source = "../../modules/environment"

  environment = local.environment
  aws_region  = local.aws_region

  # OWNER/REPO whose workflows may assume the CI role.
  github_repository = "OWNER/REPO"

  # aws eks describe-cluster --name CLUSTER --query cluster.identity.oidc.issuer
  eks_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

  # Plain String parameters: name => value (values land in state: nothing secret).
  parameters = {
    param1 = "prod-value-1"
    param2 = "prod-value-2"
  }

  # SecureString parameters: name => what the secret is for. No value here:
  # Terraform writes a placeholder that state never keeps, and the value is put
  # out of band (README, "Secret parameters").
  secure_parameters = {
    api-token = { description = "Token of the partner API, set out of band" }
  }

  # The service runs with EXPOSE_SECURE_PARAMETERS=false, so its role cannot
  # decrypt.
  allow_secure_parameter_decryption = false
}
