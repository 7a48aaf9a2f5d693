# One repository per image: immutable tags (a tag, once pushed, always names the
# same image), scan on push, KMS encryption, and a lifecycle that expires
# untagged and old commit images but never release tags.

locals {
  # ECR evaluates rules by priority, and an image matched by the tag selection
  # of a rule can no longer be expired by a rule of lower priority. The first
  # rules select release tags (v*) and signatures kept under sha256-<digest>
  # tags, and only expire beyond an unreachable count: they shield those
  # images, including a commit image that was later given a release tag.
  kept_tag_patterns = ["v*", "sha256-*"]

  keep_rules = [for i, pattern in local.kept_tag_patterns : {
    rulePriority = i + 1
    description  = "Keep images tagged ${pattern}"
    selection = {
      tagStatus      = "tagged"
      tagPatternList = [pattern]
      countType      = "imageCountMoreThan"
      countNumber    = 100000
    }
    action = { type = "expire" }
  }]

  lifecycle_policy = jsonencode({
    rules = concat(local.keep_rules, [
      {
        rulePriority = length(local.keep_rules) + 1
        description  = "Expire untagged images after ${var.untagged_expiry_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = length(local.keep_rules) + 2
        description  = "Keep the last ${var.keep_commit_images} commit images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_commit_images
        }
        action = { type = "expire" }
      },
    ])
  })
}

resource "aws_ecr_repository" "this" {
  for_each = var.repository_names

  name                 = "${var.project}/${each.key}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy     = local.lifecycle_policy
}
