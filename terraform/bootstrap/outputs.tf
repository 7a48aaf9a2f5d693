output "state_bucket" {
  description = "Bucket for the S3 backend of the other roots (-backend-config=\"bucket=...\")."
  value       = module.state_bucket.bucket_name
}

output "aws_region" {
  description = "Region of the state bucket (backend region)."
  value       = var.aws_region
}
