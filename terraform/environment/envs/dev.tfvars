environment       = "dev"
github_repository = "OWNER/REPO"

# aws eks describe-cluster --name CLUSTER --query cluster.identity.oidc.issuer
eks_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

parameters = {
  param1 = "dev-value-1"
  param2 = "dev-value-2"
}

secure_parameters = {
  api-token = "Example secret; the value is set out of band"
}

# The service runs with EXPOSE_SECURE_PARAMETERS=false, so its role cannot
# decrypt. Set both to true to show SecureString values.
allow_secure_parameter_decryption = false
