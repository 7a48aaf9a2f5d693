# The CI role GitHub Actions assumes through OIDC and the pod role of the
# auxiliary service, each allowed exactly what its user does.

locals {
  iam_arn_prefix = "arn:${var.partition}:iam::${var.account_id}"

  # --- CI role ---
  ci_actions = {
    # Build and push (docker push), read back (pull) and look an image up.
    push = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    # Add a release tag to an image that exists: read its manifest (and
    # the signature's blobs, for verification), put it back under the new
    # tag. No layer upload.
    promote = [
      "ecr:BatchGetImage",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:PutImage",
    ]
  }

  ci_trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "GitHubActionsOIDC"
      Effect    = "Allow"
      Principal = { Federated = var.github_oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          "token.actions.githubusercontent.com:sub" = var.github_subject
        }
      }
    }]
  })

  ci_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "RegistryLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
      {
        Sid      = "Repositories"
        Effect   = "Allow"
        Action   = local.ci_actions[var.ci_ecr_access]
        Resource = sort(var.ecr_repository_arns)
      },
    ]
  })

  # --- Pod role ---
  use_pod_identity = var.pod_identity_cluster_name != null
  irsa_issuer      = var.eks_oidc_issuer_url == null ? "" : trimsuffix(replace(var.eks_oidc_issuer_url, "https://", ""), "/")
  service_account  = "system:serviceaccount:${var.service_account_namespace}:${var.service_account_name}"

  pod_identity_trust = {
    Sid       = "EksPodIdentity"
    Effect    = "Allow"
    Principal = { Service = "pods.eks.amazonaws.com" }
    Action    = ["sts:AssumeRole", "sts:TagSession"]
    Condition = {
      StringEquals = { "aws:SourceAccount" = var.account_id }
      ArnEquals    = { "aws:SourceArn" = "arn:${var.partition}:eks:${var.region}:${var.account_id}:cluster/${coalesce(var.pod_identity_cluster_name, "-")}" }
    }
  }

  irsa_trust = {
    Sid       = "EksServiceAccountIRSA"
    Effect    = "Allow"
    Principal = { Federated = "${local.iam_arn_prefix}:oidc-provider/${local.irsa_issuer}" }
    Action    = "sts:AssumeRoleWithWebIdentity"
    Condition = {
      StringEquals = {
        "${local.irsa_issuer}:aud" = "sts.amazonaws.com"
        "${local.irsa_issuer}:sub" = local.service_account
      }
    }
  }

  # The two trust statements differ in shape, so the choice is made on the
  # encoded documents.
  pod_trust_policy = (local.use_pod_identity
    ? jsonencode({ Version = "2012-10-17", Statement = [local.pod_identity_trust] })
    : jsonencode({ Version = "2012-10-17", Statement = [local.irsa_trust] })
  )

  # Exactly the calls of the service: S3 ListBuckets, SSM DescribeParameters
  # (which cannot be scoped to a resource), SSM GetParameter under its prefix
  # and, for SecureString values, kms:Decrypt on their key through SSM.
  pod_statements = concat(
    [
      {
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = "s3:ListAllMyBuckets"
        Resource = "*"
      },
      {
        Sid      = "DescribeParameters"
        Effect   = "Allow"
        Action   = "ssm:DescribeParameters"
        Resource = "*"
      },
      {
        Sid      = "ReadParameters"
        Effect   = "Allow"
        Action   = "ssm:GetParameter"
        Resource = "arn:${var.partition}:ssm:${var.region}:${var.account_id}:parameter${var.parameter_prefix}/*"
      },
    ],
    var.allow_secure_parameter_decryption ? [{
      Sid       = "DecryptSecureParameters"
      Effect    = "Allow"
      Action    = "kms:Decrypt"
      Resource  = var.parameters_kms_key_arn
      Condition = { StringEquals = { "kms:ViaService" = "ssm.${var.region}.amazonaws.com" } }
    }] : [],
  )

  pod_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.pod_statements
  })
}

resource "aws_iam_role" "ci" {
  name                 = "${var.name_prefix}-ci"
  description          = "GitHub Actions (${var.github_subject}): ECR ${var.ci_ecr_access}"
  assume_role_policy   = local.ci_trust_policy
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "ci" {
  name   = "ecr-${var.ci_ecr_access}"
  role   = aws_iam_role.ci.id
  policy = local.ci_policy
}

resource "aws_iam_role" "pod" {
  name               = "${var.name_prefix}-auxiliary-service"
  description        = "Pod role of ${local.service_account}"
  assume_role_policy = local.pod_trust_policy

  lifecycle {
    precondition {
      condition     = local.use_pod_identity || var.eks_oidc_issuer_url != null
      error_message = "Set eks_oidc_issuer_url (IRSA) or pod_identity_cluster_name (EKS Pod Identity): the pod role would trust nobody."
    }
  }
}

resource "aws_iam_role_policy" "pod" {
  name   = "auxiliary-service"
  role   = aws_iam_role.pod.id
  policy = local.pod_policy
}

resource "aws_eks_pod_identity_association" "pod" {
  count = local.use_pod_identity ? 1 : 0

  cluster_name    = var.pod_identity_cluster_name
  namespace       = var.service_account_namespace
  service_account = var.service_account_name
  role_arn        = aws_iam_role.pod.arn
}

# Static credentials only on explicit request (create_static_credentials).
resource "aws_iam_user" "static" {
  #checkov:skip=CKV_AWS_273:Opt-in fallback for clusters without IRSA or Pod Identity, off by default and documented as the weaker option.
  count = var.create_static_credentials ? 1 : 0

  name = "${var.name_prefix}-auxiliary-service"
}

resource "aws_iam_user_policy" "static" {
  #checkov:skip=CKV_AWS_40:The opt-in static user carries the pod role's policy inline so both stay identical; no group exists for a single technical user.
  count = var.create_static_credentials ? 1 : 0

  name   = "auxiliary-service"
  user   = aws_iam_user.static[0].name
  policy = local.pod_policy
}

resource "aws_iam_access_key" "static" {
  count = var.create_static_credentials ? 1 : 0

  user = aws_iam_user.static[0].name
}
