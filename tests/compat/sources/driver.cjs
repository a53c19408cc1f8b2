// Runs @azure/identity (MSAL Node underneath) against one emulated managed-identity source,
// unmodified, and prints one JSON row per case on stdout, like tests/compat/sources/driver.py:
// configured only by the environment `mitoken emulate --env-file` wrote, with the same COMPAT_*
// variables. Run from the directory that holds node_modules (target/compat-node).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { DefaultAzureCredential, ManagedIdentityCredential } = require(
  path.join(process.cwd(), "node_modules", "@azure", "identity"),
);

const env = process.env;
const SOURCE = env.COMPAT_SOURCE;
const RESOURCE = env.COMPAT_RESOURCE;
const UA1 = env.COMPAT_UA1_CLIENT;
const UA2_RES = env.COMPAT_UA2_RESOURCE_ID;
const UA2_OBJECT = env.COMPAT_UA2_OBJECT;
const UNKNOWN = env.COMPAT_UNKNOWN_CLIENT;
const NOT_ALLOWED = "https://example.com";

function packageVersion(name) {
  const file = path.join(process.cwd(), "node_modules", name, "package.json");
  return JSON.parse(fs.readFileSync(file, "utf8")).version;
}

const VERSION = `${packageVersion("@azure/identity")} (msal-node ${packageVersion("@azure/msal-node")})`;

function oneLine(text) {
  return String(text).split(/\s+/).join(" ").trim();
}

async function run(api, caseName, make, resource = RESOURCE) {
  const row = {
    client: "JavaScript @azure/identity",
    api,
    version: VERSION,
    source: SOURCE,
    case: caseName,
    route: "mitoken emulate --env-file",
    resource,
    token: null,
    error: null,
  };
  try {
    row.token = (await make().getToken(`${resource}/.default`)).token;
  } catch (e) {
    row.error = `${e.name}: ${oneLine(e.message)}`;
  }
  return row;
}

async function main() {
  const mic = "ManagedIdentityCredential";
  const dac = "DefaultAzureCredential";
  const rows = [];
  rows.push(await run(mic, "system-assigned", () => new ManagedIdentityCredential()));
  rows.push(await run(mic, "user-assigned by client id", () => new ManagedIdentityCredential(UA1)));
  rows.push(
    await run(mic, "identity that does not exist", () => new ManagedIdentityCredential(UNKNOWN)),
  );
  rows.push(await run(dac, "system-assigned", () => new DefaultAzureCredential()));
  if (SOURCE === "app-service" || SOURCE === "arc") {
    rows.push(
      await run(
        mic,
        "user-assigned by resource id",
        () => new ManagedIdentityCredential({ resourceId: UA2_RES }),
      ),
    );
    rows.push(
      await run(
        mic,
        "user-assigned by object id",
        () => new ManagedIdentityCredential({ objectId: UA2_OBJECT }),
      ),
    );
  }
  if (SOURCE === "cloud-shell") {
    rows.push(
      await run(mic, "audience not on the allowlist", () => new ManagedIdentityCredential(), NOT_ALLOWED),
    );
  }
  process.stdout.write(JSON.stringify(rows));
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
