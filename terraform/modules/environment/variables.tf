variable "project" {
  description = "Project name: prefix of names, first segment of parameter names."
  type        = string
  default     = "kantox-challenge"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project))
    error_message = "project must be 3-32 lower-case letters, digits and hyphens."
  }
}

variable "environment" {
  description = "Environment: dev or prod. Also the Kubernetes namespace of the services."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "aws_region" {
  description = "Region of the environment."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "github_repository" {
  description = "GitHub repository (OWNER/REPO) whose workflows may assume the CI role: the main branch in dev, the prod environment in prod."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be OWNER/REPO, without wildcards."
  }
}

variable "images" {
  description = "Image repositories (created by the shared root) the CI role may use."
  type        = set(string)
  default     = ["main-api", "auxiliary-service"]

  validation {
    condition     = length(var.images) > 0
    error_message = "images must name at least one repository."
  }
}

variable "eks_oidc_issuer_url" {
  description = "OIDC issuer URL of the EKS cluster for IRSA (aws eks describe-cluster --query cluster.identity.oidc.issuer)."
  type        = string
  default     = null
}

variable "pod_identity_cluster_name" {
  description = "Set to the EKS cluster name to use EKS Pod Identity instead of IRSA."
  type        = string
  default     = null
}

variable "parameters" {
  description = "String parameters below /<project>/<environment>/: name => value."
  type        = map(string)
}

variable "secure_parameters" {
  description = "SecureString parameters below /<project>/<environment>/: name => { description }. No value: each is created with a write-only placeholder (never in state) and set out of band; the description (kept in state) says what the secret is for."
  type = map(object({
    description = string
  }))
  default = {}
}

variable "allow_secure_parameter_decryption" {
  description = "Let the auxiliary service decrypt SecureString values (it runs with EXPOSE_SECURE_PARAMETERS=true)."
  type        = bool
  default     = false
}

variable "create_static_credentials" {
  description = "Create an IAM user and access key with the pod role's permissions, for clusters without IRSA or Pod Identity (weaker; off by default)."
  type        = bool
  default     = false
}
