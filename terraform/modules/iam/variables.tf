variable "name_prefix" {
  description = "Prefix of every IAM name, <project>-<environment>."
  type        = string
}

variable "partition" {
  description = "AWS partition, e.g. aws."
  type        = string
  default     = "aws"
}

variable "account_id" {
  description = "AWS account id of the roles."
  type        = string
}

variable "region" {
  description = "Region of the parameters and their KMS key."
  type        = string
}

# --- CI role (GitHub Actions through OIDC) ---

variable "github_oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider for token.actions.githubusercontent.com."
  type        = string
}

variable "github_subject" {
  description = "The one GitHub OIDC subject the CI role trusts, e.g. repo:OWNER/REPO:ref:refs/heads/main or repo:OWNER/REPO:environment:prod."
  type        = string

  validation {
    condition     = can(regex("^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:(ref:refs/heads/[A-Za-z0-9_./-]+|environment:[A-Za-z0-9_.-]+)$", var.github_subject))
    error_message = "github_subject must be one exact subject (repo:OWNER/REPO:ref:refs/heads/BRANCH or repo:OWNER/REPO:environment:NAME), without wildcards."
  }
}

variable "ci_ecr_access" {
  description = "What the CI role may do in ECR: push (build and push images) or promote (read images and add a tag to one)."
  type        = string

  validation {
    condition     = contains(["push", "promote"], var.ci_ecr_access)
    error_message = "ci_ecr_access must be push or promote."
  }
}

variable "ecr_repository_arns" {
  description = "ARNs of the repositories the CI role may use."
  type        = list(string)

  validation {
    condition     = length(var.ecr_repository_arns) > 0 && alltrue([for a in var.ecr_repository_arns : !strcontains(a, "*")])
    error_message = "ecr_repository_arns must list at least one repository, without wildcards."
  }
}

# --- Pod role of the auxiliary service ---

variable "service_account_namespace" {
  description = "Namespace of the auxiliary service's Kubernetes service account."
  type        = string
}

variable "service_account_name" {
  description = "Name of the auxiliary service's Kubernetes service account."
  type        = string
}

variable "eks_oidc_issuer_url" {
  description = "OIDC issuer URL of the EKS cluster (IRSA), e.g. https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE. Its IAM OIDC provider must exist in the account. Ignored when pod_identity_cluster_name is set."
  type        = string
  default     = null

  validation {
    condition     = var.eks_oidc_issuer_url == null || can(regex("^https://[^*\\s]+$", var.eks_oidc_issuer_url))
    error_message = "eks_oidc_issuer_url must be an https URL."
  }
}

variable "pod_identity_cluster_name" {
  description = "EKS cluster name when EKS Pod Identity is used instead of IRSA; the module then trusts pods.eks.amazonaws.com and creates the pod identity association for the service account."
  type        = string
  default     = null
}

variable "parameter_prefix" {
  description = "SSM prefix the service reads, e.g. /kantox-challenge/dev."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.parameter_prefix))
    error_message = "parameter_prefix must start with '/' and hold no wildcard or trailing '/'."
  }
}

variable "parameters_kms_key_arn" {
  description = "ARN of the KMS key of the SecureString parameters."
  type        = string
}

variable "allow_secure_parameter_decryption" {
  description = "Grant kms:Decrypt on the parameters' key (through SSM only). Needed only when the service runs with EXPOSE_SECURE_PARAMETERS=true."
  type        = bool
  default     = false
}

variable "create_static_credentials" {
  description = "Also create an IAM user with an access key and the pod role's permissions, for clusters without IRSA or Pod Identity. Weaker: a long-lived key that must be stored and rotated by hand."
  type        = bool
  default     = false
}
