"""Runs the Python clients against one emulated managed-identity source, unmodified, and prints
one JSON row per case on stdout (the shape of tests/compat/python/driver.py): azure-identity's
ManagedIdentityCredential and DefaultAzureCredential, and msal's ManagedIdentityClient.

The clients are configured only by the environment `mitoken emulate --env-file` wrote (the
caller exports it); COMPAT_SOURCE names the source (for the row labels and the source-only
cases), COMPAT_RESOURCE the audience to ask for, and COMPAT_UA1_CLIENT, COMPAT_UA2_RESOURCE_ID,
COMPAT_UA2_OBJECT, COMPAT_UNKNOWN_CLIENT the identities. Tokens are printed for validate.py,
which replaces them by their checked claims.
"""

import json
import os
import sys
from importlib.metadata import version

import requests
import msal
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

SOURCE = os.environ["COMPAT_SOURCE"]
RESOURCE = os.environ["COMPAT_RESOURCE"]
UA1 = os.environ["COMPAT_UA1_CLIENT"]
UA2_RES = os.environ["COMPAT_UA2_RESOURCE_ID"]
UA2_OBJECT = os.environ["COMPAT_UA2_OBJECT"]
UNKNOWN = os.environ["COMPAT_UNKNOWN_CLIENT"]
NOT_ALLOWED = "https://example.com"


def one_line(text):
    return " ".join(str(text).split())


def row(client, api, case, resource, token=None, error=None):
    package = "azure-identity" if client.startswith("azure-identity") else "msal"
    return {
        "client": "Python " + client,
        "api": api,
        "version": version(package),
        "source": SOURCE,
        "case": case,
        "route": "mitoken emulate --env-file",
        "resource": resource,
        "token": token,
        "error": error,
    }


def azure_identity(api, case, make, resource=RESOURCE):
    try:
        token = make().get_token(resource + "/.default").token
        return row("azure-identity", api, case, resource, token=token)
    except Exception as e:  # the rows record whatever the SDK raises
        return row("azure-identity", api, case, resource, error=f"{type(e).__name__}: {one_line(e)}")


def msal_case(case, identity, resource=RESOURCE):
    try:
        client = msal.ManagedIdentityClient(identity, http_client=requests.Session())
        result = client.acquire_token_for_client(resource=resource)
    except Exception as e:
        return row("msal", "ManagedIdentityClient", case, resource, error=f"{type(e).__name__}: {one_line(e)}")
    if "access_token" in result:
        return row("msal", "ManagedIdentityClient", case, resource, token=result["access_token"])
    error = f"{result.get('error')}: {one_line(result.get('error_description', ''))}"
    return row("msal", "ManagedIdentityClient", case, resource, error=error)


def main():
    mic, dac = "ManagedIdentityCredential", "DefaultAzureCredential"
    rows = [
        azure_identity(mic, "system-assigned", ManagedIdentityCredential),
        azure_identity(mic, "user-assigned by client id", lambda: ManagedIdentityCredential(client_id=UA1)),
        azure_identity(mic, "identity that does not exist",
                       lambda: ManagedIdentityCredential(client_id=UNKNOWN)),
        azure_identity(dac, "system-assigned", DefaultAzureCredential),
        msal_case("system-assigned", msal.SystemAssignedManagedIdentity()),
        msal_case("user-assigned by client id", msal.UserAssignedManagedIdentity(client_id=UA1)),
        msal_case("identity that does not exist", msal.UserAssignedManagedIdentity(client_id=UNKNOWN)),
    ]
    if SOURCE in ("app-service", "arc"):
        rows += [
            azure_identity(mic, "user-assigned by resource id",
                           lambda: ManagedIdentityCredential(identity_config={"resource_id": UA2_RES})),
            azure_identity(mic, "user-assigned by object id",
                           lambda: ManagedIdentityCredential(identity_config={"object_id": UA2_OBJECT})),
            msal_case("user-assigned by resource id", msal.UserAssignedManagedIdentity(resource_id=UA2_RES)),
            msal_case("user-assigned by object id", msal.UserAssignedManagedIdentity(object_id=UA2_OBJECT)),
        ]
    if SOURCE == "azure-ml":
        default = os.environ.get("DEFAULT_IDENTITY_CLIENT_ID", "")
        rows += [
            azure_identity(mic, "DEFAULT_IDENTITY_CLIENT_ID passed as client id",
                           lambda: ManagedIdentityCredential(client_id=default)),
            msal_case("DEFAULT_IDENTITY_CLIENT_ID passed as client id",
                      msal.UserAssignedManagedIdentity(client_id=default)),
        ]
    if SOURCE == "cloud-shell":
        rows.append(azure_identity(mic, "audience not on the allowlist", ManagedIdentityCredential,
                                   resource=NOT_ALLOWED))
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
