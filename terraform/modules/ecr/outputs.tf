output "repository_urls" {
  description = "Repository URL per image name (registry/project/name)."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARN per image name."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}

output "lifecycle_policy" {
  description = "The lifecycle policy document applied to every repository."
  value       = local.lifecycle_policy
}
