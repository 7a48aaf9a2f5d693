# Parameters under /<project>/<environment>/ and their KMS key.

mock_provider "aws" {}

variables {
  project           = "kantox-challenge"
  environment       = "dev"
  account_id        = "111122223333"
  parameters        = { param1 = "a", param2 = "b" }
  secure_parameters = { api-token = { description = "Token of the partner API" } }
}

run "parameters_live_under_the_prefix" {
  command = apply

  assert {
    condition     = output.prefix == "/kantox-challenge/dev"
    error_message = "The prefix must be /<project>/<environment>."
  }

  assert {
    condition     = output.parameter_names == tolist(["/kantox-challenge/dev/api-token", "/kantox-challenge/dev/param1", "/kantox-challenge/dev/param2"])
    error_message = "Every parameter must live under the prefix."
  }

  assert {
    condition     = alltrue([for p in aws_ssm_parameter.string : p.type == "String"])
    error_message = "Plain parameters are String."
  }

  assert {
    condition     = aws_ssm_parameter.secure["api-token"].type == "SecureString" && aws_ssm_parameter.secure["api-token"].key_id == aws_kms_key.parameters.arn
    error_message = "Secret parameters are SecureString, encrypted with the customer managed key."
  }

  assert {
    condition     = aws_kms_key.parameters.enable_key_rotation
    error_message = "The key must rotate."
  }

  assert {
    condition     = jsondecode(aws_kms_key.parameters.policy).Statement[0].Principal == { AWS = "arn:aws:iam::111122223333:root" }
    error_message = "The key policy must name the account, never a wildcard principal."
  }
}

run "rejects_bad_parameter_names" {
  command = plan

  variables {
    parameters = { "../escape" = "x" }
  }

  expect_failures = [var.parameters]
}

run "secret_value_never_in_state" {
  command = apply

  assert {
    condition     = aws_ssm_parameter.secure["api-token"].description == "Token of the partner API"
    error_message = "The description is the map's description."
  }

  assert {
    condition     = aws_ssm_parameter.secure["api-token"].value_wo == null && aws_ssm_parameter.secure["api-token"].value_wo_version == 1
    error_message = "The placeholder goes through the write-only argument, which the state never keeps."
  }
}

run "rejects_a_secret_value_as_description" {
  command = plan

  variables {
    secure_parameters = { api-token = { description = "s3cr3t-P4ssw0rd" } }
  }

  expect_failures = [var.secure_parameters]
}

run "rejects_a_token_inside_a_description" {
  command = plan

  variables {
    secure_parameters = { api-token = { description = "partner token sk_live_4eC39HqLyjWDarjtT1zdp7dc" } }
  }

  expect_failures = [var.secure_parameters]
}
