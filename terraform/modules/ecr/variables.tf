variable "project" {
  description = "Project name; repositories are named <project>/<name>."
  type        = string
}

variable "repository_names" {
  description = "Repository names below the project, one per image."
  type        = set(string)

  validation {
    condition     = alltrue([for n in var.repository_names : can(regex("^[a-z0-9]+([._-][a-z0-9]+)*$", n))])
    error_message = "Repository names must be lower-case letters and digits separated by '.', '_' or '-'."
  }
}

variable "keep_commit_images" {
  description = "How many commit-tagged images to keep per repository; older ones expire. Release tags (v*) never expire."
  type        = number
  default     = 50

  validation {
    condition     = var.keep_commit_images >= 1
    error_message = "keep_commit_images must be at least 1."
  }
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images (layers of superseded builds) expire."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_expiry_days >= 1
    error_message = "untagged_expiry_days must be at least 1."
  }
}
