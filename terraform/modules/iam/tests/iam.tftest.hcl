# Trust and permissions of the CI role and the pod role, with a mocked provider.

mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111122223333:role/mocked"
    }
  }
}

variables {
  name_prefix              = "kantox-challenge-dev"
  account_id               = "111122223333"
  region                   = "eu-west-1"
  github_oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
  github_subject           = "repo:example-org/platform:ref:refs/heads/main"
  ci_ecr_access            = "push"
  ecr_repository_arns = [
    "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/main-api",
    "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/auxiliary-service",
  ]
  service_account_namespace = "dev"
  service_account_name      = "auxiliary-service"
  eks_oidc_issuer_url       = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
  parameter_prefix          = "/kantox-challenge/dev"
  parameters_kms_key_arn    = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
}

run "ci_role_trusts_one_exact_subject" {
  command = apply

  assert {
    condition     = aws_iam_role.ci.name == "kantox-challenge-dev-ci"
    error_message = "CI role name must be <project>-<env>-ci."
  }

  assert {
    condition = jsondecode(aws_iam_role.ci.assume_role_policy).Statement == [{
      Sid       = "GitHubActionsOIDC"
      Effect    = "Allow"
      Principal = { Federated = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com" }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          "token.actions.githubusercontent.com:sub" = "repo:example-org/platform:ref:refs/heads/main"
        }
      }
    }]
    error_message = "The CI trust policy must be exactly one StringEquals on aud and sub."
  }

  assert {
    condition     = !strcontains(aws_iam_role.ci.assume_role_policy, "*") && !strcontains(aws_iam_role.ci.assume_role_policy, "StringLike")
    error_message = "No wildcard or StringLike in the CI trust policy."
  }
}

run "ci_push_policy_is_limited_to_the_repositories" {
  command = apply

  assert {
    condition = jsondecode(aws_iam_role_policy.ci.policy).Statement == [
      { Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },
      {
        Sid    = "Repositories"
        Effect = "Allow"
        Action = [
          "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:DescribeImages",
          "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
        ]
        Resource = [
          "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/auxiliary-service",
          "arn:aws:ecr:eu-west-1:111122223333:repository/kantox-challenge/main-api",
        ]
      },
    ]
    error_message = "The push policy must allow the push and pull actions on the two repositories only."
  }
}

run "ci_promote_policy_only_reads_and_tags" {
  command = apply

  variables {
    name_prefix    = "kantox-challenge-prod"
    github_subject = "repo:example-org/platform:environment:prod"
    ci_ecr_access  = "promote"
  }

  assert {
    condition     = toset(jsondecode(aws_iam_role_policy.ci.policy).Statement[1].Action) == toset(["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:PutImage"])
    error_message = "The promote policy must only read images and put a tag."
  }

  assert {
    condition     = jsondecode(aws_iam_role.ci.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == "repo:example-org/platform:environment:prod"
    error_message = "The prod CI role must trust the prod environment subject."
  }
}

run "rejects_wildcard_subject" {
  command = plan

  variables {
    github_subject = "repo:example-org/platform:*"
  }

  expect_failures = [var.github_subject]
}

run "rejects_repository_wildcard" {
  command = plan

  variables {
    ecr_repository_arns = ["arn:aws:ecr:eu-west-1:111122223333:repository/*"]
  }

  expect_failures = [var.ecr_repository_arns]
}

run "pod_role_trusts_its_service_account_only" {
  command = apply

  assert {
    condition     = aws_iam_role.pod.name == "kantox-challenge-dev-auxiliary-service"
    error_message = "Pod role name must be <project>-<env>-auxiliary-service."
  }

  assert {
    condition = jsondecode(aws_iam_role.pod.assume_role_policy).Statement == [{
      Sid       = "EksServiceAccountIRSA"
      Effect    = "Allow"
      Principal = { Federated = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789" }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789:aud" = "sts.amazonaws.com"
          "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789:sub" = "system:serviceaccount:dev:auxiliary-service"
        }
      }
    }]
    error_message = "The pod trust policy must name exactly the dev/auxiliary-service service account."
  }
}

run "pod_policy_allows_exactly_the_service_calls" {
  command = apply

  assert {
    condition = jsondecode(aws_iam_role_policy.pod.policy).Statement == [
      { Sid = "ListBuckets", Effect = "Allow", Action = "s3:ListAllMyBuckets", Resource = "*" },
      { Sid = "DescribeParameters", Effect = "Allow", Action = "ssm:DescribeParameters", Resource = "*" },
      {
        Sid      = "ReadParameters"
        Effect   = "Allow"
        Action   = "ssm:GetParameter"
        Resource = "arn:aws:ssm:eu-west-1:111122223333:parameter/kantox-challenge/dev/*"
      },
    ]
    error_message = "Without decryption the pod policy is ListAllMyBuckets, DescribeParameters and GetParameter under the prefix."
  }

  assert {
    condition     = length(aws_iam_user.static) == 0 && length(aws_iam_access_key.static) == 0
    error_message = "No IAM user or access key unless asked for."
  }
}

run "pod_policy_decrypts_through_ssm_only_when_allowed" {
  command = apply

  variables {
    allow_secure_parameter_decryption = true
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.pod.policy).Statement[3] == {
      Sid       = "DecryptSecureParameters"
      Effect    = "Allow"
      Action    = "kms:Decrypt"
      Resource  = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
      Condition = { StringEquals = { "kms:ViaService" = "ssm.eu-west-1.amazonaws.com" } }
    }
    error_message = "kms:Decrypt must be limited to the parameters' key and to calls through SSM."
  }
}

run "pod_identity_alternative" {
  command = apply

  variables {
    eks_oidc_issuer_url       = null
    pod_identity_cluster_name = "platform"
  }

  assert {
    condition     = jsondecode(aws_iam_role.pod.assume_role_policy).Statement[0].Principal == { Service = "pods.eks.amazonaws.com" }
    error_message = "With Pod Identity the pod role trusts the EKS pods service."
  }

  assert {
    condition     = aws_eks_pod_identity_association.pod[0].namespace == "dev" && aws_eks_pod_identity_association.pod[0].service_account == "auxiliary-service"
    error_message = "The association binds the role to the one service account."
  }
}

run "static_credentials_only_on_request" {
  command = apply

  variables {
    create_static_credentials = true
  }

  assert {
    condition     = length(aws_iam_access_key.static) == 1 && aws_iam_user_policy.static[0].policy == aws_iam_role_policy.pod.policy
    error_message = "The opt-in user carries exactly the pod role's policy."
  }
}

run "pod_role_needs_a_trust_source" {
  command = plan

  variables {
    eks_oidc_issuer_url = null
  }

  expect_failures = [aws_iam_role.pod]
}
