"""Runs the curl lines of Microsoft's managed-identity docs as written (identity ids filled in)
and prints one JSON row per line, like driver.py. Run inside the private network namespace where
169.254.169.254:80 is the IMDS emulator and localhost:50342 the VM-extension emulator.

Sources (docs/compatibility.md): the VM tutorials' and how-to-use-vm-token's IMDS line, its
parameter table for client_id / object_id / msi_res_id, and the retired VM extension's GET and
POST lines.
"""

import json
import os
import subprocess
import sys

UA1 = os.environ["COMPAT_UA1_CLIENT"]
UA2_RES = os.environ["COMPAT_UA2_RESOURCE_ID"].replace("/", "%2F")
UNKNOWN = os.environ["COMPAT_UNKNOWN_CLIENT"]
ARM = "https://management.azure.com/"
IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"
ARM_Q = "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"

# (case, expected identity, the line as the docs write it)
LINES = [
    ("IMDS, system-assigned (VM tutorial)", "system",
     f"curl '{IMDS}?{ARM_Q}' -H Metadata:true"),
    ("IMDS, system-assigned (how-to, -s)", "system",
     f"curl '{IMDS}?{ARM_Q}' -H Metadata:true -s"),
    ("IMDS, Metadata: true with a space", "system",
     f"curl '{IMDS}?resource=https://management.azure.com/&api-version=2018-02-01' -H \"Metadata: true\""),
    ("IMDS, user-assigned by client_id", "ua1",
     f"curl '{IMDS}?{ARM_Q}&client_id={UA1}' -H Metadata:true -s"),
    ("IMDS, user-assigned by msi_res_id", "ua2",
     f"curl '{IMDS}?{ARM_Q}&msi_res_id={UA2_RES}' -H Metadata:true -s"),
    ("IMDS, identity the VM lacks", "unknown",
     f"curl '{IMDS}?{ARM_Q}&client_id={UNKNOWN}' -H Metadata:true -s"),
    ("VM extension, GET", "system",
     "curl -H Metadata:true 'http://localhost:50342/oauth2/token?resource=https://management.azure.com/'"),
    ("VM extension, POST form", "system",
     "curl http://localhost:50342/oauth2/token --data \"resource=https://management.azure.com/\" -H Metadata:true"),
]


def version():
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else "?"


rows = []
for case, expect, line in LINES:
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    r = {"client": "curl (docs lines)", "api": line, "version": version(), "case": case,
         "route": "direct", "resource": ARM, "expect": expect, "token": None, "error": None}
    try:
        body = json.loads(out.stdout)
    except ValueError:
        r["error"] = f"curl exit {out.returncode}: {' '.join(out.stdout.split())[:200]}"
    else:
        if "access_token" in body:
            r["token"] = body["access_token"]
        else:
            r["error"] = f"{body.get('error')}: {body.get('error_description')}"
    rows.append(r)
json.dump(rows, sys.stdout)
