"""Runs the Python clients of the compatibility matrix, unmodified, and prints one JSON row per
case on stdout: azure-identity's ManagedIdentityCredential and DefaultAzureCredential, and
msal's ManagedIdentityClient.

COMPAT_MODE says how the clients reach the emulator:
  env   AZURE_POD_IDENTITY_AUTHORITY_HOST is set (by the caller) to the emulator's base URL;
  imds  nothing is set: the clients use http://169.254.169.254, which the caller serves from a
        private network namespace; DefaultAzureCredential probes it first.

Identities come from COMPAT_UA1_CLIENT (a user-assigned client id), COMPAT_UA2_RESOURCE_ID (the
ARM id of another), COMPAT_UA2_OBJECT (its object id) and COMPAT_UNKNOWN_CLIENT (a client id the VM lacks). Tokens are printed for
the validator (validate.py), which replaces them by their checked claims before anything is shown.
"""

import json
import os
import sys
from importlib.metadata import version

import requests
import msal
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

RESOURCE = "https://vault.azure.net"
SCOPE = RESOURCE + "/.default"
MODE = os.environ["COMPAT_MODE"]
UA1 = os.environ["COMPAT_UA1_CLIENT"]
UA2_RES = os.environ["COMPAT_UA2_RESOURCE_ID"]
UA2_OBJECT = os.environ["COMPAT_UA2_OBJECT"]
UNKNOWN = os.environ["COMPAT_UNKNOWN_CLIENT"]
ROUTE = "AZURE_POD_IDENTITY_AUTHORITY_HOST" if MODE == "env" else "169.254.169.254 (private netns)"


def one_line(text):
    return " ".join(str(text).split())


def row(client, api, case, expect, token=None, error=None):
    package = "azure-identity" if client.startswith("azure-identity") else "msal"
    return {
        "client": "Python " + client,
        "api": api,
        "version": version(package),
        "case": case,
        "route": ROUTE,
        "resource": RESOURCE,
        "expect": expect,
        "token": token,
        "error": error,
    }


def azure_identity(api, case, expect, make):
    try:
        token = make().get_token(SCOPE).token
        return row("azure-identity", api, case, expect, token=token)
    except Exception as e:  # the matrix records whatever the SDK raises
        return row("azure-identity", api, case, expect, error=f"{type(e).__name__}: {one_line(e)}")


def msal_case(case, expect, identity):
    client = msal.ManagedIdentityClient(identity, http_client=requests.Session())
    try:
        result = client.acquire_token_for_client(resource=RESOURCE)
    except Exception as e:
        return row("msal", "ManagedIdentityClient", case, expect, error=f"{type(e).__name__}: {one_line(e)}")
    if "access_token" in result:
        return row("msal", "ManagedIdentityClient", case, expect, token=result["access_token"])
    error = f"{result.get('error')}: {one_line(result.get('error_description', ''))}"
    return row("msal", "ManagedIdentityClient", case, expect, error=error)


def main():
    mic, dac = "ManagedIdentityCredential", "DefaultAzureCredential"
    rows = []
    if MODE == "env":
        rows.append(azure_identity(mic, "system-assigned", "system", ManagedIdentityCredential))
        rows.append(azure_identity(mic, "user-assigned by client id", "ua1",
                                   lambda: ManagedIdentityCredential(client_id=UA1)))
        rows.append(azure_identity(mic, "user-assigned by resource id", "ua2",
                                   lambda: ManagedIdentityCredential(identity_config={"resource_id": UA2_RES})))
        rows.append(azure_identity(mic, "user-assigned by object id", "ua2",
                                   lambda: ManagedIdentityCredential(identity_config={"object_id": UA2_OBJECT})))
        rows.append(azure_identity(mic, "identity the VM lacks", "unknown",
                                   lambda: ManagedIdentityCredential(client_id=UNKNOWN)))
        rows.append(azure_identity(dac, "system-assigned", "system", DefaultAzureCredential))
        rows.append(azure_identity(dac, "user-assigned by client id", "ua1",
                                   lambda: DefaultAzureCredential(managed_identity_client_id=UA1)))
        rows.append(azure_identity(dac, "identity the VM lacks", "unknown",
                                   lambda: DefaultAzureCredential(managed_identity_client_id=UNKNOWN)))
        rows.append(msal_case("system-assigned", "system", msal.SystemAssignedManagedIdentity()))
        rows.append(msal_case("user-assigned by client id", "ua1",
                              msal.UserAssignedManagedIdentity(client_id=UA1)))
        rows.append(msal_case("user-assigned by resource id", "ua2",
                              msal.UserAssignedManagedIdentity(resource_id=UA2_RES)))
        rows.append(msal_case("user-assigned by object id", "ua2",
                              msal.UserAssignedManagedIdentity(object_id=UA2_OBJECT)))
        rows.append(msal_case("identity the VM lacks", "unknown",
                              msal.UserAssignedManagedIdentity(client_id=UNKNOWN)))
    else:
        rows.append(azure_identity(dac, "probe, then system-assigned", "system", DefaultAzureCredential))
        rows.append(azure_identity(mic, "system-assigned", "system", ManagedIdentityCredential))
        rows.append(msal_case("system-assigned", "system", msal.SystemAssignedManagedIdentity()))
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
