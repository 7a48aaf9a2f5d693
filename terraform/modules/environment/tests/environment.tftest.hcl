# How dev and prod differ: the CI subject and ECR access per environment, the
# pod role's service account and prefix, and decryption only where asked for.

mock_provider "aws" {
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "111122223333" }
  }

  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }

  override_data {
    target = data.aws_iam_openid_connect_provider.github
    values = { arn = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com" }
  }

  override_data {
    target = data.aws_ecr_repository.image["main-api"]
    values = {
      arn            = "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/main-api"
      repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/kantox-challenge/main-api"
    }
  }

  override_data {
    target = data.aws_ecr_repository.image["auxiliary-service"]
    values = {
      arn            = "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/auxiliary-service"
      repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/kantox-challenge/auxiliary-service"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000" }
  }

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/mocked" }
  }

  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mocked" }
  }
}

variables {
  github_repository   = "example-org/platform"
  eks_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
  parameters          = { param1 = "a", param2 = "b" }
  secure_parameters   = { api-token = { description = "Token of the partner API" } }
}

run "dev" {
  command = apply

  variables {
    environment                       = "dev"
    allow_secure_parameter_decryption = true
  }

  assert {
    condition     = module.iam.ci_trust_subject == "repo:example-org/platform:ref:refs/heads/main"
    error_message = "The dev CI role must trust pushes to main only."
  }

  assert {
    condition     = contains(jsondecode(output.ci_policy).Statement[1].Action, "ecr:UploadLayerPart")
    error_message = "The dev CI role pushes images."
  }

  assert {
    condition     = output.service_account == "system:serviceaccount:dev:auxiliary-service"
    error_message = "The dev pod role trusts the dev service account."
  }

  assert {
    condition     = output.parameter_prefix == "/kantox-challenge/dev" && output.bucket_name_prefix == "kantox-challenge-dev-"
    error_message = "Names follow /<project>/<env> and <project>-<env>-<unique suffix>."
  }

  assert {
    condition     = module.bucket.bucket_name != "kantox-challenge-dev-bucket" && !strcontains(module.bucket.bucket_name, "111122223333")
    error_message = "The application bucket's name is globally unique and does not reveal the account id (the worker lists it publicly)."
  }

  assert {
    condition     = output.ecr_repository_urls["main-api"] == "111122223333.dkr.ecr.eu-west-1.amazonaws.com/kantox-challenge/main-api"
    error_message = "Repository URLs are passed through from the shared registry."
  }

  assert {
    condition     = contains([for s in jsondecode(output.auxiliary_service_policy).Statement : s.Action], "kms:Decrypt")
    error_message = "dev decrypts SecureString values."
  }
}

run "prod" {
  command = apply

  variables {
    environment = "prod"
  }

  assert {
    condition     = module.iam.ci_trust_subject == "repo:example-org/platform:environment:prod"
    error_message = "The prod CI role must trust the prod GitHub environment only."
  }

  assert {
    condition     = toset(jsondecode(output.ci_policy).Statement[1].Action) == toset(["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:PutImage"])
    error_message = "The prod CI role only reads images and adds tags."
  }

  assert {
    condition     = output.service_account == "system:serviceaccount:prod:auxiliary-service"
    error_message = "The prod pod role trusts the prod service account."
  }

  assert {
    condition     = !contains([for s in jsondecode(output.auxiliary_service_policy).Statement : s.Action], "kms:Decrypt")
    error_message = "prod does not decrypt SecureString values unless asked."
  }

  assert {
    condition     = strcontains(jsondecode(output.auxiliary_service_policy).Statement[2].Resource, ":parameter/kantox-challenge/prod/*")
    error_message = "prod reads only its own parameters."
  }
}

run "rejects_unknown_environment" {
  command = plan

  variables {
    environment = "staging"
  }

  expect_failures = [var.environment]
}

run "rejects_wildcard_repository" {
  command = plan

  variables {
    environment       = "dev"
    github_repository = "example-org/*"
  }

  expect_failures = [var.github_repository]
}

run "rejects_bad_region" {
  command = plan

  variables {
    environment = "dev"
    aws_region  = "europe"
  }

  expect_failures = [var.aws_region]
}
