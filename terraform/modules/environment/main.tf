# One environment (dev or prod): application bucket, parameters and their key,
# the CI role of the environment's workflows and the auxiliary service's pod
# role. The registry and the GitHub OIDC provider come from the shared root.
# Called by the environment roots terraform/envs/dev and terraform/envs/prod,
# each with its own state; the provider is configured there.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_ecr_repository" "image" {
  for_each = var.images

  name = "${var.project}/${each.key}"
}

data "aws_iam_openid_connect_provider" "github" {
  url = "https://token.actions.githubusercontent.com"
}

locals {
  name_prefix = "${var.project}-${var.environment}"

  # Who deploys what: main-branch builds push commit images in dev; the
  # release job, gated by the prod GitHub environment, only adds tags.
  ci = {
    dev  = { subject = "repo:${var.github_repository}:ref:refs/heads/main", ecr_access = "push" }
    prod = { subject = "repo:${var.github_repository}:environment:prod", ecr_access = "promote" }
  }
}

# Bucket names are global across every AWS account: the application bucket
# gets a unique generated suffix (<project>-<env>-<timestamp and counter>),
# not the account id, because the worker lists bucket names in a public
# answer. The worker's S3_BUCKET_PREFIX (manifests/overlays/<env>) is
# bucket_name_prefix: it lists this environment's buckets only.
module "bucket" {
  source = "../s3"

  bucket_prefix = "${local.name_prefix}-"
}

module "ssm" {
  source = "../ssm"

  project           = var.project
  environment       = var.environment
  parameters        = var.parameters
  secure_parameters = var.secure_parameters
  account_id        = data.aws_caller_identity.current.account_id
  partition         = data.aws_partition.current.partition
}

module "iam" {
  source = "../iam"

  name_prefix = local.name_prefix
  partition   = data.aws_partition.current.partition
  account_id  = data.aws_caller_identity.current.account_id
  region      = var.aws_region

  github_oidc_provider_arn = data.aws_iam_openid_connect_provider.github.arn
  github_subject           = local.ci[var.environment].subject
  ci_ecr_access            = local.ci[var.environment].ecr_access
  ecr_repository_arns      = [for r in data.aws_ecr_repository.image : r.arn]

  service_account_namespace = var.environment
  service_account_name      = "auxiliary-service"
  eks_oidc_issuer_url       = var.eks_oidc_issuer_url
  pod_identity_cluster_name = var.pod_identity_cluster_name

  parameter_prefix                  = module.ssm.prefix
  parameters_kms_key_arn            = module.ssm.kms_key_arn
  allow_secure_parameter_decryption = var.allow_secure_parameter_decryption
  create_static_credentials         = var.create_static_credentials
}
