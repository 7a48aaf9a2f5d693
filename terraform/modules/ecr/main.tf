# One repository per image: immutable tags (a tag, once pushed, always names the
# same image), scan on push, KMS encryption, and a lifecycle that expires
# untagged and old commit images but never release tags.

locals {
  # ECR evaluates rules by priority, and an image matched by the tag selection
  # of a rule can no longer be expired by a rule of lower priority. Rule 1
  # selects release tags and only expires beyond an unreachable count, so it
  # shields every v* image, including a commit image that was later tagged.
  # Rule 2 does the same for signatures kept under sha256-<digest> tags.
  lifecycle_policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep release images (v*)"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["v*"]
          countType      = "imageCountMoreThan"
          countNumber    = 100000
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep signatures and attestations stored under sha256-<digest> tags"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["sha256-*"]
          countType      = "imageCountMoreThan"
          countNumber    = 100000
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 3
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
        rulePriority = 4
        description  = "Keep the last ${var.keep_commit_images} commit images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_commit_images
        }
        action = { type = "expire" }
      },
    ]
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
