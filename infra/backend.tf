# Remote state, one per stage: Terraform's s3 backend on IBM COS (its S3-compatible API).
# Partial configuration: `retailfn deploy --stage <stage>` writes stages/<stage>.s3.tfbackend
# (bucket <bucket prefix>-terraform-state, key retailfn/<stage>/terraform.tfstate, the COS
# endpoint of the region) and runs `terraform init -reconfigure -backend-config=<that file>`.
# Credentials: COS HMAC keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. See README.md.
terraform {
  backend "s3" {}
}
