output "ecr_repository_urls" {
  description = "Repository URL per image (image names of the workflows and kustomize images)."
  value       = module.ecr.repository_urls
}

output "ecr_repository_arns" {
  description = "Repository ARN per image."
  value       = module.ecr.repository_arns
}

output "github_oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider the CI roles trust."
  value       = aws_iam_openid_connect_provider.github.arn
}
