variable "project" {
  description = "Project name, the first segment of every parameter name."
  type        = string
}

variable "environment" {
  description = "Environment name, the second segment of every parameter name."
  type        = string
}

variable "parameters" {
  description = "Plain String parameters: name below the prefix => value. Values land in state and in the console; nothing secret here."
  type        = map(string)

  validation {
    condition     = alltrue([for name in keys(var.parameters) : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$", name))])
    error_message = "Parameter names are segments separated by '/', each starting with a letter or digit followed by letters, digits, '_', '.' or '-'."
  }
}

variable "secure_parameters" {
  description = <<-EOT
    SecureString parameters: name below the prefix => { description }. The map
    holds no value at all: Terraform creates each parameter with a placeholder
    through a write-only argument (never stored in state) and the real value is
    put out of band with `aws ssm put-parameter --overwrite`. The description is
    stored in state and shown in the console, so it says what the secret is for,
    never what it is: a description that looks like a credential (no space, or
    a long unbroken token) is refused.
  EOT
  type = map(object({
    description = string
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.secure_parameters) : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$", name))])
    error_message = "Parameter names are segments separated by '/', each starting with a letter or digit followed by letters, digits, '_', '.' or '-'."
  }

  validation {
    condition = alltrue([for p in values(var.secure_parameters) :
      length(p.description) <= 200 &&
      can(regex("\\s", trimspace(p.description))) &&
      !can(regex("[A-Za-z0-9+/=_-]{20,}", p.description))
    ])
    error_message = "A secure parameter's description says what the secret is for, in words (spaces, at most 200 characters, no unbroken run of 20 or more token characters): it is stored in state and shown in the console, so the value itself must never be put there."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the parameters' KMS key is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "account_id" {
  description = "AWS account that administers the KMS key (its root principal is the key administrator)."
  type        = string
}

variable "partition" {
  description = "AWS partition, e.g. aws."
  type        = string
  default     = "aws"
}
