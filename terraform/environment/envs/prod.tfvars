environment       = "prod"
github_repository = "OWNER/REPO"

# aws eks describe-cluster --name CLUSTER --query cluster.identity.oidc.issuer
eks_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

parameters = {
  param1 = "prod-value-1"
  param2 = "prod-value-2"
}

secure_parameters = {
  api-token = "Example secret; the value is set out of band"
}

# The service runs with EXPOSE_SECURE_PARAMETERS=false, so its role cannot
# decrypt.
allow_secure_parameter_decryption = false
