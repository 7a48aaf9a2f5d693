variable "project" {
  description = "Project name, the prefix of the state bucket."
  type        = string
  default     = "kantox-challenge"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project))
    error_message = "project must be 3-32 lower-case letters, digits and hyphens."
  }
}

variable "aws_region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "state_bucket_name" {
  description = "Name of the state bucket; null means <project>-tfstate-<account id>, unique per account."
  type        = string
  default     = null
}
