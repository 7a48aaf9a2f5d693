# Account-wide pieces used by every environment: the image repositories (one
# registry; dev pushes commit images, prod adds release tags to them) and the
# GitHub OIDC identity provider (one per URL and account).

module "ecr" {
  source = "../modules/ecr"

  project            = var.project
  repository_names   = var.images
  keep_commit_images = var.keep_commit_images
}

resource "aws_iam_openid_connect_provider" "github" {
  url             = "https://token.actions.githubusercontent.com"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = var.github_oidc_thumbprints
}
