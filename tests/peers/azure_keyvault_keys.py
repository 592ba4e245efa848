#!/usr/bin/env python3
"""Drive keyfleet's fake Azure Key Vault with the official azure-keyvault-keys client, unmodified.

Usage: azure_keyvault_keys.py URL CA_PEM     (e.g. https://127.0.0.1:4600 /tmp/ca.pem)

The client talks HTTPS (trusting CA_PEM), goes through Key Vault's bearer challenge, and gets its
token from the fake's Entra ID token endpoint with the built-in client credentials. Exits non-zero
on the first failed check; prints "azure-keyvault-keys fake-vault: N checks passed" on success.
Run by crates/keyfleet-fakes/tests/azure_python_peer.rs.
"""

import json
import ssl
import sys
import time
import urllib.parse
import urllib.request
import uuid

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.keys import ApiVersion, KeyClient, KeyCurveName, KeyType

TENANT = "00000000-0000-0000-0000-00000000000a"
CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret"


class CheckFailed(Exception):
    pass


class Checks:
    def __init__(self):
        self.passed = 0

    def ok(self, condition, what):
        if not condition:
            raise CheckFailed(what)
        self.passed += 1

    def eq(self, actual, expected, what):
        if actual != expected:
            raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")
        self.passed += 1

    def raises(self, error_type, status, code, call, *args, **kwargs):
        """The call must raise error_type with this HTTP status and Key Vault error code."""
        try:
            call(*args, **kwargs)
        except error_type as err:
            got_code = err.error.code if err.error else None
            if err.status_code != status or got_code != code:
                raise CheckFailed(
                    f"{call.__name__}: expected {status} {code}, got {err.status_code} {got_code}: {err}"
                ) from err
            self.passed += 1
            return err
        raise CheckFailed(f"{call.__name__}{args}: expected {error_type.__name__} {code}, but it succeeded")


class FakeEntraCredential:
    """A TokenCredential that gets real tokens from the fake's Entra ID endpoint (client credentials)."""

    def __init__(self, authority, ssl_context, secret=CLIENT_SECRET):
        self.authority = authority
        self.ssl_context = ssl_context
        self.secret = secret
        self.requests = []

    def get_token(self, *scopes, claims=None, tenant_id=None, enable_cae=False, **kwargs):
        tenant = tenant_id or TENANT
        self.requests.append((tenant, scopes))
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": self.secret,
                "scope": " ".join(scopes),
            }
        ).encode()
        request = urllib.request.Request(f"{self.authority}/{tenant}/oauth2/v2.0/token", data=form, method="POST")
        try:
            with urllib.request.urlopen(request, context=self.ssl_context) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            raise ClientAuthenticationError(message=f"token endpoint: {err.code} {err.read()!r}") from err
        return AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))


def fake_control(url, ssl_context, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, context=ssl_context) as response:
        return json.load(response)


def main(url, ca_pem):
    checks = Checks()
    ssl_context = ssl.create_default_context(cafile=ca_pem)
    credential = FakeEntraCredential(url, ssl_context)
    suffix = uuid.uuid4().hex[:6]
    vault_url = f"{url}/vaults/py-{suffix}"
    client = KeyClient(vault_url, credential, verify_challenge_resource=False, connection_verify=ca_pem)

    # ---- create, get, versions, update ----
    rsa = client.create_rsa_key("py-rsa", size=3072, tags={"team": "a"})
    checks.eq(rsa.name, "py-rsa", "created key name (parsed from kid)")
    checks.eq(rsa.key_type, KeyType.rsa, "kty")
    checks.eq(len(rsa.key.n), 384, "RSA-3072 modulus bytes")
    checks.eq(rsa.key.e, b"\x01\x00\x01", "public exponent")
    checks.ok(len(rsa.properties.version) == 32, f"version is 32 hex digits: {rsa.properties.version}")
    checks.eq(rsa.properties.enabled, True, "enabled by default")
    checks.eq(rsa.properties.recovery_level, "Recoverable+Purgeable", "recovery level")
    checks.eq(rsa.properties.recoverable_days, 90, "recoverable days")
    checks.eq(rsa.properties.tags, {"team": "a"}, "tags")
    checks.ok(rsa.properties.created_on is not None, "created_on")
    checks.eq(len(credential.requests), 1, "one token after the bearer challenge")
    checks.eq(credential.requests[0], (TENANT, ("https://vault.azure.net/.default",)), "challenge tenant and scope")

    ec = client.create_ec_key("py-ec", curve=KeyCurveName.p_384, hardware_protected=True)
    checks.eq((ec.key_type, ec.key.crv), (KeyType.ec_hsm, KeyCurveName.p_384), "EC-HSM P-384")
    checks.eq((len(ec.key.x), len(ec.key.y)), (48, 48), "P-384 coordinates")
    checks.eq(sorted(ec.key_operations), ["sign", "verify"], "EC default key_ops")

    got = client.get_key("py-rsa")
    checks.eq(got.id, rsa.id, "get latest")
    checks.eq(client.get_key("PY-RSA", rsa.properties.version).id, rsa.id, "get by version, name case-insensitive")
    err = checks.raises(ResourceNotFoundError, 404, "KeyNotFound", client.get_key, "missing")
    checks.ok("missing" in err.message, "404 names the key")
    checks.raises(ResourceNotFoundError, 404, "KeyNotFound", client.get_key, "py-rsa", "0" * 32)
    checks.raises(HttpResponseError, 400, "BadParameter", client.create_rsa_key, "py-small", size=1024)

    rsa2 = client.create_rsa_key("py-rsa")
    checks.ok(rsa2.properties.version != rsa.properties.version, "create over an existing key adds a version")
    versions = [p.version for p in client.list_properties_of_key_versions("py-rsa")]
    checks.eq(sorted(versions), sorted([rsa.properties.version, rsa2.properties.version]), "both versions listed")
    checks.eq(client.get_key("py-rsa").properties.version, rsa2.properties.version, "latest is the new version")

    updated = client.update_key_properties("py-rsa", enabled=False, tags={"team": "b"}, expires_on=None)
    checks.eq((updated.properties.enabled, updated.properties.tags), (False, {"team": "b"}), "update latest")
    old = client.update_key_properties("py-rsa", rsa.properties.version, key_operations=["sign", "verify"])
    checks.eq(old.properties.version, rsa.properties.version, "update a named version")
    checks.eq(sorted(old.key_operations), ["sign", "verify"], "key_ops updated")
    checks.eq(client.get_key("py-rsa").properties.enabled, False, "latest stays disabled")

    # ---- list paging (maxresults + nextLink with $skiptoken) ----
    for i in range(28):
        client.create_ec_key(f"page-{i:02d}")
    pages = list(client.list_properties_of_keys(max_page_size=10).by_page())
    page_sizes = [len(list(page)) for page in pages]
    checks.eq(page_sizes, [10, 10, 10], "30 keys in pages of 10")
    names = [p.name for p in client.list_properties_of_keys(max_page_size=7)]
    checks.eq(len(names), 30, "every key listed once")
    checks.eq(len(set(names)), 30, "no duplicates across pages")
    checks.ok({"py-rsa", "py-ec", "page-00", "page-27"} <= set(names), "listing holds all keys")
    listed = next(p for p in client.list_properties_of_keys() if p.name == "py-rsa")
    checks.eq(listed.version, None, "listed kid has no version")
    checks.eq(listed.enabled, False, "listing shows current version attributes")

    # ---- backup, delete, purge, restore ----
    backup = client.backup_key("py-rsa")
    checks.ok(isinstance(backup, bytes) and len(backup) > 100, "backup is an opaque blob")
    deleted = client.begin_delete_key("py-rsa").result()
    checks.eq(deleted.name, "py-rsa", "deleted key name")
    checks.ok(deleted.recovery_id.endswith("/deletedkeys/py-rsa"), f"recovery id {deleted.recovery_id}")
    checks.ok(deleted.deleted_date is not None, "deleted date")
    delta = deleted.scheduled_purge_date - deleted.deleted_date
    checks.eq(round(delta.total_seconds() / 86400), 90, "purge scheduled after 90 days")
    checks.raises(ResourceNotFoundError, 404, "KeyNotFound", client.get_key, "py-rsa")
    checks.eq(client.get_deleted_key("py-rsa").id, deleted.id, "get deleted key")
    checks.ok("py-rsa" in [d.name for d in client.list_deleted_keys()], "listed as deleted")
    err = checks.raises(ResourceExistsError, 409, "Conflict", client.create_rsa_key, "py-rsa")
    checks.ok("deleted but recoverable" in err.message, f"conflict explains the deleted state: {err.message}")
    checks.raises(ResourceExistsError, 409, "Conflict", client.restore_key_backup, backup)
    client.purge_deleted_key("py-rsa")
    checks.raises(ResourceNotFoundError, 404, "KeyNotFound", client.get_deleted_key, "py-rsa")
    restored = client.restore_key_backup(backup)
    checks.eq((restored.name, restored.properties.version), ("py-rsa", rsa2.properties.version), "restored latest")
    restored_versions = sorted(p.version for p in client.list_properties_of_key_versions("py-rsa"))
    checks.eq(restored_versions, sorted(versions), "backup carried every version")
    checks.eq(restored.properties.enabled, False, "restored attributes")
    checks.raises(ResourceExistsError, 409, "Conflict", client.restore_key_backup, backup)
    checks.raises(HttpResponseError, 400, "BadParameter", client.restore_key_backup, b"not a backup")

    # ---- recover ----
    client.begin_delete_key("py-ec").wait()
    recovered = client.begin_recover_deleted_key("py-ec").result()
    checks.eq(recovered.id, ec.id, "recovered key is the same version")
    checks.eq(client.get_key("py-ec").key.crv, KeyCurveName.p_384, "recovered key is readable")

    # ---- api-version: the client's default is accepted; an old one is refused ----
    # (Own credentials: each client caches its own token, and `credential` counts the main one's.)
    old_client = KeyClient(
        vault_url, FakeEntraCredential(url, ssl_context), api_version=ApiVersion.V7_3, verify_challenge_resource=False, connection_verify=ca_pem
    )
    checks.raises(HttpResponseError, 400, "BadParameter", old_client.get_key, "py-ec")
    new_client = KeyClient(
        vault_url, FakeEntraCredential(url, ssl_context), api_version=ApiVersion.V7_4, verify_challenge_resource=False, connection_verify=ca_pem
    )
    checks.eq(new_client.get_key("py-ec").id, ec.id, "api-version 7.4 accepted")

    # ---- throttling: the SDK retries 429 + Retry-After on its own ----
    fake_control(url, ssl_context, "PUT", "/_fake/throttle", {"every_nth": 2, "retry_after_secs": 1})
    for _ in range(3):
        checks.eq(client.get_key("py-ec").id, ec.id, "get through throttling")
    fake_control(url, ssl_context, "PUT", "/_fake/throttle", {})
    calls = fake_control(url, ssl_context, "GET", "/_fake/calls")
    throttled = [c for c in calls if c["status"] == 429]
    checks.ok(len(throttled) >= 2, f"429s were served and retried: {len(throttled)}")
    checks.ok(all(c["error"] == "Throttled" for c in throttled), "429 code is Throttled")

    # ---- a wrong secret never gets a token ----
    bad = KeyClient(
        f"{url}/vaults/py-bad-{suffix}",
        FakeEntraCredential(url, ssl_context, secret="wrong"),
        verify_challenge_resource=False,
        connection_verify=ca_pem,
    )
    try:
        bad.get_key("py-ec")
        raise CheckFailed("a wrong client secret got through")
    except ClientAuthenticationError as err:
        checks.ok("invalid_client" in str(err), f"wrong secret is invalid_client: {err}")

    checks.eq(len(credential.requests), 1, "the SDK cached its one token for the whole run")
    print(f"azure-keyvault-keys fake-vault: {checks.passed} checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        main(sys.argv[1].rstrip("/"), sys.argv[2])
    except CheckFailed as failed:
        sys.exit(f"CHECK FAILED: {failed}")
