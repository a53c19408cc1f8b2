"""Driver of tests/tests/source_service_fabric.rs and source_workload_identity.rs.

Usage: sources_tls.py service-fabric|workload-identity KEY_PEM RESOURCE

Configured only by the environment `mitoken emulate --env-file` wrote (the test exports it);
prints one JSON row per (client, case): {"client", "case", "ok", "claims" | "error"}. A token's
signature is checked with the emulator's exported signing key (KEY_PEM) and its audience with
RESOURCE; the token itself is never printed.
"""
import json
import os
import sys
import traceback

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

SOURCE, KEY_PEM, RESOURCE = sys.argv[1], sys.argv[2], sys.argv[3]
SCOPE = RESOURCE.rstrip("/") + "/.default"
with open(KEY_PEM, "rb") as f:
    PUBLIC = load_pem_private_key(f.read(), password=None).public_key()
ROWS = []


def check(token):
    claims = jwt.decode(token, PUBLIC, algorithms=["RS256"], audience=RESOURCE.rstrip("/"))
    return {k: claims.get(k) for k in ("aud", "appid", "oid", "tid", "iss")}


def row(client, case, fn):
    saved = dict(os.environ)
    try:
        token = fn()
        ROWS.append({"client": client, "case": case, "ok": True, "claims": check(token)})
    except Exception as e:  # the failure itself is the result
        text = " ".join(str(e).split())
        ROWS.append({"client": client, "case": case, "ok": False, "error": text[:1200],
                     "type": type(e).__name__})
        if os.environ.get("MITOKEN_DRIVER_TRACE"):
            traceback.print_exc()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def msal_result(r):
    if "access_token" in r:
        return r["access_token"]
    raise RuntimeError("%s: %s" % (r.get("error"), r.get("error_description")))


def service_fabric():
    import msal
    import requests
    from azure.identity import ManagedIdentityCredential

    def azid():
        return ManagedIdentityCredential().get_token(SCOPE).token

    def msal_mi():
        c = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(),
                                       http_client=requests.Session())
        return msal_result(c.acquire_token_for_client(resource=RESOURCE))

    def with_env(name, value, fn):
        def go():
            os.environ[name] = value
            return fn()
        return go

    def azid_uami():
        return ManagedIdentityCredential(client_id="20000000-0000-4000-8000-000000000002").get_token(SCOPE).token

    row("python azure-identity ManagedIdentityCredential", "token", azid)
    row("python azure-identity ManagedIdentityCredential", "unknown secret",
        with_env("IDENTITY_HEADER", "not-the-secret", azid))
    row("python azure-identity ManagedIdentityCredential", "wrong thumbprint",
        with_env("IDENTITY_SERVER_THUMBPRINT", "00" * 20, azid))
    row("python azure-identity ManagedIdentityCredential", "user-assigned", azid_uami)
    row("python msal ManagedIdentityClient", "token", msal_mi)
    row("python msal ManagedIdentityClient", "unknown secret",
        with_env("IDENTITY_HEADER", "not-the-secret", msal_mi))
    row("python msal ManagedIdentityClient", "wrong thumbprint",
        with_env("IDENTITY_SERVER_THUMBPRINT", "00" * 20, msal_mi))


def workload_identity():
    import msal
    from azure.identity import DefaultAzureCredential, WorkloadIdentityCredential

    unknown = "99999999-0000-4000-8000-000000000000"

    def wi(**kw):
        return lambda: WorkloadIdentityCredential(**kw).get_token(SCOPE).token

    def dac():
        return DefaultAzureCredential().get_token(SCOPE).token

    def cca(client_id=None):
        def go():
            app = msal.ConfidentialClientApplication(
                client_id or os.environ["AZURE_CLIENT_ID"],
                authority=os.environ["AZURE_AUTHORITY_HOST"].rstrip("/") + "/" + os.environ["AZURE_TENANT_ID"],
                client_credential={"client_assertion": lambda: open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read()},
                # A non-Microsoft authority: otherwise MSAL asks login.microsoftonline.com.
                instance_discovery=False,
            )
            return msal_result(app.acquire_token_for_client([SCOPE]))
        return go

    row("python azure-identity WorkloadIdentityCredential", "token", wi())
    row("python azure-identity DefaultAzureCredential", "token", dac)
    row("python azure-identity WorkloadIdentityCredential", "unknown client", wi(client_id=unknown))
    row("python msal ConfidentialClientApplication", "token", cca())
    row("python msal ConfidentialClientApplication", "unknown client", cca(unknown))


{"service-fabric": service_fabric, "workload-identity": workload_identity}[SOURCE]()
json.dump(ROWS, sys.stdout, indent=1)
