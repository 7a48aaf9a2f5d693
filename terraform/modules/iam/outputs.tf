output "ci_role_arn" {
  description = "ARN of the CI role (AWS_ROLE_ARN of the workflow)."
  value       = aws_iam_role.ci.arn
}

output "ci_policy" {
  description = "Permissions policy of the CI role (JSON)."
  value       = local.ci_policy
}

output "pod_role_arn" {
  description = "ARN of the auxiliary service's pod role (eks.amazonaws.com/role-arn annotation of its service account)."
  value       = aws_iam_role.pod.arn
}

output "pod_policy" {
  description = "Permissions policy of the pod role (JSON)."
  value       = local.pod_policy
}

output "service_account" {
  description = "The one Kubernetes service account the pod role trusts."
  value       = local.service_account
}

output "static_access_key_id" {
  description = "Access key id of the opt-in static user (null unless create_static_credentials)."
  value       = one(aws_iam_access_key.static[*].id)
}

output "static_secret_access_key" {
  description = "Secret of the opt-in static user (null unless create_static_credentials)."
  value       = one(aws_iam_access_key.static[*].secret)
  sensitive   = true
}

output "ci_trust_subject" {
  description = "The one GitHub OIDC subject the CI role trusts, as written in its trust policy."
  value       = jsondecode(aws_iam_role.ci.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"]
}
