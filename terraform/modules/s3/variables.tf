variable "bucket_name" {
  description = "Name of the bucket (globally unique across every AWS account, e.g. with the account id in it). Set this or bucket_prefix."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens."
  }

  validation {
    condition     = (var.bucket_name == null) != (var.bucket_prefix == null)
    error_message = "Set exactly one of bucket_name and bucket_prefix."
  }
}

variable "bucket_prefix" {
  description = "Prefix of a generated, globally unique name (the provider appends a timestamp and a counter, 26 characters). Set this or bucket_name."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_prefix == null || can(regex("^[a-z0-9][a-z0-9.-]{0,36}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 1-37 lower-case letters, digits, dots and hyphens, starting with a letter or digit (the generated name adds 26 characters)."
  }
}

variable "kms_key_arn" {
  description = "KMS key for default encryption; null uses the AWS managed key aws/s3 (still SSE-KMS)."
  type        = string
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept before it expires; null keeps every version (no lifecycle rule)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days == null || try(var.noncurrent_version_expiration_days >= 1, false)
    error_message = "noncurrent_version_expiration_days must be at least 1, or null to keep every version."
  }
}

variable "force_destroy" {
  description = "Allow destroying the bucket while it still holds objects. Keep false outside throwaway environments."
  type        = bool
  default     = false
}
