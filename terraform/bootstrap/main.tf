# The bucket that holds the state of every other root (shared, dev, prod).
# Locking uses S3 conditional writes (use_lockfile), so no DynamoDB table.
# This root keeps its own small state locally (see README).

data "aws_caller_identity" "current" {}

module "state_bucket" {
  source = "../modules/s3"

  bucket_name = coalesce(var.state_bucket_name, "${var.project}-tfstate-${data.aws_caller_identity.current.account_id}")

  # Every state version is kept: the history is the undo log of the
  # infrastructure, and state objects are small.
  noncurrent_version_expiration_days = null
}
