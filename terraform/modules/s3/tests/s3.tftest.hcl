# Hardening of every bucket (application and state), with a mocked provider.

mock_provider "aws" {}

variables {
  bucket_name = "kantox-challenge-test-bucket"
}

run "bucket_is_hardened" {
  command = apply

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be enabled."
  }

  assert {
    condition     = [for r in aws_s3_bucket_server_side_encryption_configuration.this.rule : r.apply_server_side_encryption_by_default[0].sse_algorithm] == ["aws:kms"]
    error_message = "Default encryption must be SSE-KMS."
  }

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "Every public access block setting must be on."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }

  assert {
    condition     = !aws_s3_bucket.this.force_destroy
    error_message = "force_destroy must be off by default."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*" &&
      s.Condition.Bool["aws:SecureTransport"] == "false" &&
      toset(s.Resource) == toset([aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"])
    ])
    error_message = "The bucket policy must deny every request without TLS, on the bucket and its objects."
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement : s.Effect == "Deny"])
    error_message = "The bucket policy must grant nothing; access comes from IAM policies."
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this[0].rule[0].noncurrent_version_expiration[0].noncurrent_days == 90
    error_message = "Old versions must expire (default 90 days)."
  }
}

run "null_expiry_keeps_every_version" {
  command = apply

  variables {
    noncurrent_version_expiration_days = null
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this) == 0 && aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "null keeps every version: versioning on, no expiry rule."
  }
}

run "rejects_zero_expiry" {
  command = plan

  variables {
    noncurrent_version_expiration_days = 0
  }

  expect_failures = [var.noncurrent_version_expiration_days]
}

run "rejects_invalid_bucket_name" {
  command = plan

  variables {
    bucket_name = "Not_A_Bucket"
  }

  expect_failures = [var.bucket_name]
}

run "generated_unique_name" {
  command = plan

  variables {
    bucket_name   = null
    bucket_prefix = "kantox-challenge-dev-"
  }

  assert {
    condition     = aws_s3_bucket.this.bucket_prefix == "kantox-challenge-dev-"
    error_message = "With bucket_prefix the provider generates the rest of the name."
  }
}

run "rejects_both_name_and_prefix" {
  command = plan

  variables {
    bucket_prefix = "kantox-challenge-dev-"
  }

  expect_failures = [var.bucket_name]
}

run "rejects_neither_name_nor_prefix" {
  command = plan

  variables {
    bucket_name = null
  }

  expect_failures = [var.bucket_name]
}

run "rejects_too_long_prefix" {
  command = plan

  variables {
    bucket_name   = null
    bucket_prefix = "a-project-name-that-is-far-too-long-for-s3-"
  }

  expect_failures = [var.bucket_prefix]
}
