variable "project" {
  description = "Project name; repositories are <project>/<image>."
  type        = string
  default     = "kantox-challenge"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project))
    error_message = "project must be 3-32 lower-case letters, digits and hyphens."
  }
}

variable "aws_region" {
  description = "Region of the registry."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "images" {
  description = "Image (repository) names below the project."
  type        = set(string)
  default     = ["main-api", "auxiliary-service"]

  validation {
    condition     = length(var.images) > 0
    error_message = "images must name at least one repository."
  }
}

variable "keep_commit_images" {
  description = "Commit-tagged images kept per repository; release tags (v*) are always kept."
  type        = number
  default     = 50

  validation {
    condition     = var.keep_commit_images >= 1
    error_message = "keep_commit_images must be at least 1."
  }
}

variable "github_oidc_thumbprints" {
  description = "Thumbprints for the GitHub OIDC provider. AWS no longer uses them for token.actions.githubusercontent.com, but some partitions and older provider versions expect a value."
  type        = list(string)
  default     = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]

  validation {
    condition     = alltrue([for t in var.github_oidc_thumbprints : can(regex("^[0-9a-f]{40}$", t))])
    error_message = "Thumbprints are 40 lower-case hex digits."
  }
}
