# The state bucket is named per account unless given; its hardening is tested
# in modules/s3.

mock_provider "aws" {
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "111122223333" }
  }
}

run "bucket_name_is_unique_per_account" {
  command = apply

  assert {
    condition     = output.state_bucket == "kantox-challenge-tfstate-111122223333"
    error_message = "The default state bucket is <project>-tfstate-<account id>."
  }
}

run "bucket_name_can_be_set" {
  command = apply

  variables {
    state_bucket_name = "example-terraform-state"
  }

  assert {
    condition     = output.state_bucket == "example-terraform-state"
    error_message = "state_bucket_name overrides the default name."
  }
}
