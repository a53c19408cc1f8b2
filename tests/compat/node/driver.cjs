// Runs the JavaScript client of the compatibility matrix, unmodified: @azure/identity's
// ManagedIdentityCredential and DefaultAzureCredential (MSAL Node underneath). Prints one JSON
// row per case on stdout, like tests/compat/python/driver.py, with the same COMPAT_* variables:
//   COMPAT_MODE=env   AZURE_POD_IDENTITY_AUTHORITY_HOST is set to the emulator's base URL
//                     (MSAL Node then requests `…/oauth2/token/?…`, with a trailing slash);
//   COMPAT_MODE=imds  nothing is set: http://169.254.169.254 in a private network namespace,
//                     which DefaultAzureCredential probes first (GET, no query, no Metadata).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { DefaultAzureCredential, ManagedIdentityCredential } = require("@azure/identity");

const RESOURCE = "https://vault.azure.net";
const SCOPE = `${RESOURCE}/.default`;
const env = process.env;
const MODE = env.COMPAT_MODE;
const UA1 = env.COMPAT_UA1_CLIENT;
const UA2_RES = env.COMPAT_UA2_RESOURCE_ID;
const UA2_OBJECT = env.COMPAT_UA2_OBJECT;
const UNKNOWN = env.COMPAT_UNKNOWN_CLIENT;
const ROUTE =
  MODE === "env" ? "AZURE_POD_IDENTITY_AUTHORITY_HOST" : "169.254.169.254 (private netns)";

function packageVersion(name) {
  const file = path.join(__dirname, "node_modules", name, "package.json");
  return JSON.parse(fs.readFileSync(file, "utf8")).version;
}

const VERSION = `${packageVersion("@azure/identity")} (msal-node ${packageVersion("@azure/msal-node")})`;

function oneLine(text) {
  return String(text).split(/\s+/).join(" ").trim();
}

async function run(api, caseName, expect, make) {
  const row = {
    client: "JavaScript @azure/identity",
    api,
    version: VERSION,
    case: caseName,
    route: ROUTE,
    resource: RESOURCE,
    expect,
    token: null,
    error: null,
  };
  try {
    row.token = (await make().getToken(SCOPE)).token;
  } catch (e) {
    row.error = `${e.name}: ${oneLine(e.message)}`;
  }
  return row;
}

async function main() {
  const mic = "ManagedIdentityCredential";
  const dac = "DefaultAzureCredential";
  const rows = [];
  if (MODE === "env") {
    rows.push(await run(mic, "system-assigned", "system", () => new ManagedIdentityCredential()));
    rows.push(
      await run(mic, "user-assigned by client id", "ua1", () => new ManagedIdentityCredential(UA1)),
    );
    rows.push(
      await run(
        mic,
        "user-assigned by resource id",
        "ua2",
        () => new ManagedIdentityCredential({ resourceId: UA2_RES }),
      ),
    );
    rows.push(
      await run(
        mic,
        "user-assigned by object id",
        "ua2",
        () => new ManagedIdentityCredential({ objectId: UA2_OBJECT }),
      ),
    );
    rows.push(
      await run(
        mic,
        "identity the VM lacks",
        "unknown",
        () => new ManagedIdentityCredential({ clientId: UNKNOWN }),
      ),
    );
    rows.push(await run(dac, "system-assigned", "system", () => new DefaultAzureCredential()));
    rows.push(
      await run(
        dac,
        "user-assigned by client id",
        "ua1",
        () => new DefaultAzureCredential({ managedIdentityClientId: UA1 }),
      ),
    );
    rows.push(
      await run(
        dac,
        "user-assigned by resource id",
        "ua2",
        () => new DefaultAzureCredential({ managedIdentityResourceId: UA2_RES }),
      ),
    );
    rows.push(
      await run(
        dac,
        "identity the VM lacks",
        "unknown",
        () => new DefaultAzureCredential({ managedIdentityClientId: UNKNOWN }),
      ),
    );
  } else {
    rows.push(
      await run(dac, "probe, then system-assigned", "system", () => new DefaultAzureCredential()),
    );
    rows.push(await run(mic, "system-assigned", "system", () => new ManagedIdentityCredential()));
  }
  process.stdout.write(JSON.stringify(rows));
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
