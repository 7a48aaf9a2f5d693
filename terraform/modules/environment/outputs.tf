output "ecr_repository_urls" {
  description = "Repository URL per image (workflow image names, kustomize images)."
  value       = { for k, r in data.aws_ecr_repository.image : k => r.repository_url }
}

output "ci_role_arn" {
  description = "Role the environment's workflow assumes (aws-actions/configure-aws-credentials role-to-assume)."
  value       = module.iam.ci_role_arn
}

output "ci_policy" {
  description = "Permissions policy of the CI role (JSON)."
  value       = module.iam.ci_policy
}

output "auxiliary_service_role_arn" {
  description = "Pod role: eks.amazonaws.com/role-arn annotation of the auxiliary-service service account."
  value       = module.iam.pod_role_arn
}

output "auxiliary_service_policy" {
  description = "Permissions policy of the pod role (JSON); checked against the worker's AWS calls."
  value       = module.iam.pod_policy
}

output "service_account" {
  description = "The Kubernetes service account the pod role trusts."
  value       = module.iam.service_account
}

output "bucket_name" {
  description = "Application bucket: <project>-<env>- and a unique generated suffix."
  value       = module.bucket.bucket_name
}

output "bucket_name_prefix" {
  description = "S3_BUCKET_PREFIX of the auxiliary service: the prefix every bucket of this environment starts with."
  value       = "${local.name_prefix}-"
}

output "parameter_prefix" {
  description = "PARAMETER_PREFIX of the auxiliary service."
  value       = module.ssm.prefix
}

output "parameter_names" {
  description = "Full names of the parameters created, sorted."
  value       = module.ssm.parameter_names
}

output "parameters_kms_key_arn" {
  description = "KMS key of the SecureString parameters."
  value       = module.ssm.kms_key_arn
}

output "static_access_key_id" {
  description = "Access key id of the opt-in static user (null unless create_static_credentials)."
  value       = module.iam.static_access_key_id
}

output "static_secret_access_key" {
  description = "Secret of the opt-in static user (null unless create_static_credentials)."
  value       = module.iam.static_secret_access_key
  sensitive   = true
}

output "ci_trust_subject" {
  description = "The GitHub OIDC subject the CI role trusts."
  value       = module.iam.ci_trust_subject
}

output "expose_secure_parameters" {
  description = "EXPOSE_SECURE_PARAMETERS for the auxiliary service: true only where its role may decrypt."
  value       = var.allow_secure_parameter_decryption
}
