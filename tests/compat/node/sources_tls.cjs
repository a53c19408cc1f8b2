// Driver of tests/tests/source_service_fabric.rs and source_workload_identity.rs:
// node sources_tls.cjs service-fabric|workload-identity RESOURCE
// Configured only by the environment the emulator's --env-file holds; prints JSON rows
// {client, case, ok, claims | error}. Claims are decoded (the Python driver checks signatures).
// Each case runs in its own node process: MSAL Node keeps its managed-identity source and
// tokens process-wide, so changing the environment between cases in one process tests nothing.
const { execFileSync } = require("node:child_process");
const identity = require("@azure/identity");

const [source, resource, only] = process.argv.slice(2);
const scope = resource.replace(/\/$/, "") + "/.default";
const unknown = "99999999-0000-4000-8000-000000000000";

const mic = "js @azure/identity ManagedIdentityCredential";
const wic = "js @azure/identity WorkloadIdentityCredential";
const CASES = {
  "service-fabric": [
    [mic, "token", () => new identity.ManagedIdentityCredential(), {}],
    [mic, "unknown secret", () => new identity.ManagedIdentityCredential(), { IDENTITY_HEADER: "not-the-secret" }],
    [mic, "user-assigned", () => new identity.ManagedIdentityCredential({ clientId: "20000000-0000-4000-8000-000000000002" }), {}],
  ],
  "workload-identity": [
    ["js @azure/identity DefaultAzureCredential", "token", () => new identity.DefaultAzureCredential(), {}],
    [mic, "token", () => new identity.ManagedIdentityCredential({ clientId: process.env.AZURE_CLIENT_ID }), {}],
    [wic, "token (disableInstanceDiscovery)", () => new identity.WorkloadIdentityCredential({ disableInstanceDiscovery: true }), {}],
    [wic, "token (default options)", () => new identity.WorkloadIdentityCredential(), {}],
    [wic, "unknown client", () => new identity.WorkloadIdentityCredential({ clientId: unknown, disableInstanceDiscovery: true }), {}],
  ],
}[source];

function claims(token) {
  const c = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  return { aud: c.aud, appid: c.appid, oid: c.oid, tid: c.tid, iss: c.iss };
}

async function runCase(i) {
  const [client, kase, make] = CASES[i];
  try {
    const t = await make().getToken(scope);
    return { client, case: kase, ok: true, claims: claims(t.token) };
  } catch (e) {
    return { client, case: kase, ok: false, error: String(e && e.message).replace(/\s+/g, " ").slice(0, 1200), type: e && e.name };
  }
}

(async () => {
  if (only !== undefined) {
    process.stdout.write(JSON.stringify(await runCase(Number(only))));
    return;
  }
  const rows = CASES.map((c, i) => {
    const out = execFileSync(process.execPath, [__filename, source, resource, String(i)], {
      env: { ...process.env, ...c[3] },
      encoding: "utf8",
      timeout: 120000,
    });
    return JSON.parse(out);
  });
  process.stdout.write(JSON.stringify(rows, null, 1));
})();
