output "prefix" {
  description = "Parameter prefix, e.g. /kantox-challenge/dev (PARAMETER_PREFIX of the worker)."
  value       = local.prefix
}

output "parameter_names" {
  description = "Full names of every parameter created, sorted."
  value       = sort(concat([for p in aws_ssm_parameter.string : p.name], [for p in aws_ssm_parameter.secure : p.name]))
}

output "kms_key_arn" {
  description = "ARN of the key that encrypts the SecureString parameters."
  value       = aws_kms_key.parameters.arn
}
