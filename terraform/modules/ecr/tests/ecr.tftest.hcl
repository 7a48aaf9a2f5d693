# Repositories: immutable tags, scanning, and a lifecycle that never expires
# release tags.

mock_provider "aws" {}

variables {
  project          = "kantox-challenge"
  repository_names = ["main-api", "auxiliary-service"]
}

run "repositories_are_immutable_and_scanned" {
  command = apply

  assert {
    condition     = toset([for r in aws_ecr_repository.this : r.name]) == toset(["kantox-challenge/main-api", "kantox-challenge/auxiliary-service"])
    error_message = "One repository per image, named <project>/<image>."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_tag_mutability == "IMMUTABLE"])
    error_message = "Tags must be immutable."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_scanning_configuration[0].scan_on_push])
    error_message = "Images must be scanned on push."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.encryption_configuration[0].encryption_type == "KMS"])
    error_message = "Repositories must be KMS-encrypted."
  }

  assert {
    condition     = length(aws_ecr_lifecycle_policy.this) == 2 && alltrue([for p in aws_ecr_lifecycle_policy.this : p.policy == output.lifecycle_policy])
    error_message = "Every repository carries the lifecycle policy."
  }
}

run "lifecycle_keeps_release_tags" {
  command = plan

  # The first rule (lowest priority number) is the only one that selects v*
  # tags, and it expires only beyond an unreachable count; an image it
  # matches can no longer be expired by a later rule.
  assert {
    condition = [
      for r in jsondecode(output.lifecycle_policy).rules : r.selection
      if r.rulePriority == min([for x in jsondecode(output.lifecycle_policy).rules : x.rulePriority]...)
      ][0] == {
      tagStatus      = "tagged"
      tagPatternList = ["v*"]
      countType      = "imageCountMoreThan"
      countNumber    = 100000
    }
    error_message = "The first lifecycle rule must select v* tags and keep them."
  }

  assert {
    condition = length([
      for r in jsondecode(output.lifecycle_policy).rules : r
      if r.rulePriority > 1 && anytrue([for p in try(r.selection.tagPatternList, []) : startswith(p, "v")])
    ]) == 0
    error_message = "No later rule may select release tags."
  }

  assert {
    condition = anytrue([
      for r in jsondecode(output.lifecycle_policy).rules :
      try(r.selection.tagPatternList, []) == ["sha256-*"] && r.selection.countNumber >= 100000
      && r.rulePriority < max([for x in jsondecode(output.lifecycle_policy).rules : x.rulePriority]...)
    ])
    error_message = "Signature tags (sha256-*) must be kept ahead of the catch-all rule."
  }

  assert {
    condition = anytrue([
      for r in jsondecode(output.lifecycle_policy).rules :
      r.selection.tagStatus == "untagged" && r.selection.countType == "sinceImagePushed"
    ])
    error_message = "Untagged images must expire by age."
  }

  # ECR requires a tagStatus=any rule to have the highest priority number.
  assert {
    condition = alltrue([
      for r in jsondecode(output.lifecycle_policy).rules :
      r.selection.tagStatus != "any" || r.rulePriority == max([for x in jsondecode(output.lifecycle_policy).rules : x.rulePriority]...)
    ])
    error_message = "A tagStatus=any rule must come last."
  }

  assert {
    condition     = length(distinct([for r in jsondecode(output.lifecycle_policy).rules : r.rulePriority])) == length(jsondecode(output.lifecycle_policy).rules)
    error_message = "Rule priorities must be unique."
  }
}
