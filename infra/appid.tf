# App ID issues the OIDC tokens of partners (client credentials) and members (loyalty app);
# shared/platform/auth.py validates them against the JWKS at <oauth_server_url>/publickeys.

resource "ibm_resource_instance" "appid" {
  name              = "${local.name}-appid"
  service           = "appid"
  plan              = var.appid_plan
  location          = var.region
  resource_group_id = var.resource_group_id
  tags              = ["retailfn", var.stage]
}

resource "ibm_appid_application" "partners" {
  tenant_id = ibm_resource_instance.appid.guid
  name      = "${local.name}-partners"
  type      = "regularwebapp"
}
