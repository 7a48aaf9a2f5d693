# Parameters under /<project>/<environment>/ and the customer managed key that
# encrypts the SecureString ones.

locals {
  prefix = "/${var.project}/${var.environment}"
}

resource "aws_kms_key" "parameters" {
  description             = "SecureString parameters under ${local.prefix}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  # Administration stays with the account; use is granted by IAM policies
  # (the pod role gets kms:Decrypt through SSM only).
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = { AWS = "arn:${var.partition}:iam::${var.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "parameters" {
  name          = "alias/${var.project}-${var.environment}-parameters"
  target_key_id = aws_kms_key.parameters.key_id
}

resource "aws_ssm_parameter" "string" {
  #checkov:skip=CKV2_AWS_34:Plain String parameters hold non-secret configuration by contract; secrets go to secure_parameters (SecureString, customer managed key).
  for_each = var.parameters

  name  = "${local.prefix}/${each.key}"
  type  = "String"
  value = each.value
}

resource "aws_ssm_parameter" "secure" {
  for_each = var.secure_parameters

  name        = "${local.prefix}/${each.key}"
  description = each.value.description
  type        = "SecureString"
  key_id      = aws_kms_key.parameters.arn

  # Write-only: the placeholder is sent once and never kept in state, so the
  # value set out of band is not reverted. Bump the version to rewrite it.
  value_wo         = "placeholder-set-out-of-band"
  value_wo_version = 1
}
