//! Issue #14.2: `mitoken doctor` end to end, each case in a private network namespace
//! (`unshare -n`) where 169.254.169.254 is a loopback address served by the emulator or a small
//! fixture server, so nothing leaves the machine. Each case asserts the verdicts and the exit
//! code. Needs root (for `unshare -n`); skipped, saying so, otherwise.

use std::process::Command;

use mitoken_tests::mitoken_bin;

/// Accepts connections on 169.254.169.254:80 and never answers.
const SILENT_SERVER: &str = r"
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('169.254.169.254', 80))
s.listen(16)
held = []
while True:
    held.append(s.accept()[0])
";

/// Answers every request on 169.254.169.254:80 with a container runtime's style HTML 403.
const FORBIDDEN_SERVER: &str = r"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'<html><head><title>403 Forbidden</title></head>\n<body><h1>Forbidden</h1>\nAccess to the metadata service is blocked.</body></html>\n'
        self.send_response(403)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('169.254.169.254', 80), H).serve_forever()
";

/// Something that is not the bridge on the extension's port, answering like the extension.
const LEGACY_LISTENER: &str = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"error":"invalid_request"}'
        self.send_response(400)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', 50342), H).serve_forever()
"#;

/// A user-assigned identity the emulator's built-in VM does not have.
const UNKNOWN_CLIENT_ID: &str = "9a3b1c2d-0000-4000-8000-00000000beef";

/// What one doctor run printed.
struct Run {
    code: i32,
    json: serde_json::Value,
    stderr: String,
}

impl Run {
    fn check(&self, id: &str) -> &serde_json::Value {
        self.json["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| {
                panic!(
                    "no check `{id}` in {:#}\nstderr: {}",
                    self.json, self.stderr
                )
            })
    }

    fn has(&self, id: &str) -> bool {
        self.json["checks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["id"] == id))
    }

    fn status(&self, id: &str) -> String {
        self.check(id)["status"].as_str().unwrap_or("?").to_owned()
    }

    fn detail(&self, id: &str) -> String {
        self.check(id)["detail"].as_str().unwrap_or("").to_owned()
    }

    /// Every check's status other than `ids` is ok.
    fn others_ok(&self, ids: &[&str]) {
        for c in self.json["checks"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            if !ids.contains(&id) {
                assert_eq!(c["status"], "ok", "{id}: {:#}", self.json);
            }
        }
    }
}

fn netns_available() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs, in a new network namespace: `lo` up, 169.254.169.254 on `lo` (unless `no_imds_addr`),
/// the `setup` shell lines (servers started in the background), a wait until
/// 169.254.169.254:80 accepts (when something is started there), then
/// `mitoken doctor --json <args>` with the extra environment `env`.
fn doctor(setup: &str, args: &str, env: &str, no_imds_addr: bool) -> Option<Run> {
    if !netns_available() {
        eprintln!("SKIP: `unshare -n` is not permitted here (needs root); doctor not tested");
        return None;
    }
    let address = if no_imds_addr {
        ""
    } else {
        "ip addr add 169.254.169.254/32 dev lo"
    };
    let wait = if setup.contains("169.254.169.254") || setup.contains("IMDS_SERVER") {
        "for i in $(seq 200); do (exec 3<>/dev/tcp/169.254.169.254/80) 2>/dev/null && break; sleep 0.05; done"
    } else {
        ""
    };
    let script = format!(
        "set -e\n\
         ip link set lo up\n\
         {address}\n\
         {setup}\n\
         {wait}\n\
         set +e\n\
         env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy -u ALL_PROXY -u all_proxy \
             -u NO_PROXY -u no_proxy {env} \"$MITOKEN\" doctor --json {args}\n\
         rc=$?\n\
         kill $(jobs -p) 2>/dev/null\n\
         wait 2>/dev/null\n\
         exit $rc\n"
    );
    let out = Command::new("unshare")
        .args(["-n", "bash", "-c", &script])
        .env("MITOKEN", mitoken_bin())
        .env("SILENT_SERVER", SILENT_SERVER)
        .env("FORBIDDEN_SERVER", FORBIDDEN_SERVER)
        .env("LEGACY_LISTENER", LEGACY_LISTENER)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert!(!stdout.contains("eyJ"), "a token in the doctor's output");
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr,
    })
}

/// Starts the emulator on 169.254.169.254:80 with extra arguments.
fn emulator(extra: &str) -> String {
    format!(
        "IMDS_SERVER=1 \"$MITOKEN\" emulate --listen 169.254.169.254:80 --allow-non-loopback {extra} \
         >/dev/null 2>&1 &"
    )
}

#[test]
fn a_healthy_vm_is_all_ok_with_exit_0() {
    let Some(run) = doctor(&emulator(""), "", "", false) else {
        return;
    };
    assert_eq!(run.code, 0, "{:#}", run.json);
    run.others_ok(&[]);
    let token = run.detail("token.default");
    assert!(
        token.contains("aud=https://management.azure.com/") && token.contains("oid="),
        "{token}"
    );
    assert_eq!(run.status("clock.skew"), "ok");
    assert!(run.detail("imds.answer").contains("IMDS answered a token"));
}

#[test]
fn no_route_to_imds_fails_with_exit_2() {
    let Some(run) = doctor("", "", "", true) else {
        return;
    };
    assert_eq!(run.code, 2);
    assert_eq!(run.status("imds.route"), "fail");
    assert!(
        run.detail("imds.route").contains("no route"),
        "{:#}",
        run.json
    );
    assert!(!run.has("imds.connect"), "later IMDS checks are skipped");
    assert!(run.check("imds.route")["fix"].is_string());
}

#[test]
fn a_listener_that_never_answers_fails_the_answer_check() {
    let setup = "IMDS_SERVER=1 python3 -c \"$SILENT_SERVER\" &";
    let Some(run) = doctor(setup, "--timeout 1", "", false) else {
        return;
    };
    assert_eq!(run.code, 2);
    assert_eq!(run.status("imds.connect"), "ok");
    assert_eq!(run.status("imds.answer"), "fail");
    assert!(
        run.detail("imds.answer")
            .contains("accepted the connection but sent no answer"),
        "{:#}",
        run.json
    );
    assert!(!run.has("token.default"));
}

#[test]
fn a_non_imds_403_page_is_named_as_such() {
    let setup = "IMDS_SERVER=1 python3 -c \"$FORBIDDEN_SERVER\" &";
    let Some(run) = doctor(setup, "", "", false) else {
        return;
    };
    assert_eq!(run.code, 2);
    assert_eq!(run.status("imds.answer"), "fail");
    let detail = run.detail("imds.answer");
    assert!(
        detail.contains("HTTP 403") && detail.contains("is not IMDS"),
        "{detail}"
    );
    assert!(!run.has("token.default"));
}

#[test]
fn a_proxy_variable_without_no_proxy_warns_with_exit_1() {
    let Some(run) = doctor(
        &emulator(""),
        "",
        "HTTPS_PROXY=http://127.0.0.1:3128",
        false,
    ) else {
        return;
    };
    assert_eq!(run.code, 1, "{:#}", run.json);
    assert_eq!(run.status("env.proxy"), "warn");
    assert!(run.detail("env.proxy").contains("HTTPS_PROXY"));
    run.others_ok(&["env.proxy"]);

    let exempt = doctor(
        &emulator(""),
        "",
        "HTTPS_PROXY=http://127.0.0.1:3128 NO_PROXY=localhost,169.254.169.254",
        false,
    )
    .unwrap();
    assert_eq!(exempt.code, 0, "{:#}", exempt.json);
    assert_eq!(exempt.status("env.proxy"), "ok");
}

#[test]
fn identity_not_found_is_explained_with_the_selector() {
    let args = format!("--client-id {UNKNOWN_CLIENT_ID}");
    let Some(run) = doctor(&emulator(""), &args, "", false) else {
        return;
    };
    assert_eq!(run.code, 2);
    let id = format!("token.client_id={UNKNOWN_CLIENT_ID}");
    assert_eq!(run.status(&id), "fail");
    let detail = run.detail(&id);
    assert!(
        detail.contains("Identity not found")
            && detail.contains("not assigned to this VM")
            && detail.contains(UNKNOWN_CLIENT_ID),
        "{detail}"
    );
    // IMDS itself is fine.
    run.others_ok(&[&id]);
}

#[test]
fn a_skewed_clock_fails_the_clock_check() {
    let Some(run) = doctor(&emulator("--fault skew=600"), "", "", false) else {
        return;
    };
    assert_eq!(run.code, 2, "{:#}", run.json);
    assert_eq!(run.status("clock.skew"), "fail");
    assert!(
        run.detail("clock.skew").contains("not valid yet"),
        "{:#}",
        run.json
    );
    run.others_ok(&["clock.skew"]);
}

#[test]
fn a_legacy_listener_that_is_not_the_bridge_warns() {
    let setup = format!(
        "{}\npython3 -c \"$LEGACY_LISTENER\" & LEGACY=$!\nfor i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/50342) 2>/dev/null && break; sleep 0.05; done",
        emulator("")
    );
    let Some(run) = doctor(&setup, "", "", false) else {
        return;
    };
    assert_eq!(run.code, 1, "{:#}", run.json);
    assert_eq!(run.status("legacy.listener"), "warn");
    let detail = run.detail("legacy.listener");
    assert!(
        detail.contains("not mitoken bridge") && detail.contains("python"),
        "{detail}"
    );
    run.others_ok(&["legacy.listener"]);
}

#[test]
fn the_bridge_on_the_legacy_port_is_recognised_and_its_report_shown() {
    let dir = std::env::temp_dir().join(format!("mitoken-doctor-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = dir.join("status.sock");
    let setup = format!(
        "{}\n\
         for i in $(seq 200); do (exec 3<>/dev/tcp/169.254.169.254/80) 2>/dev/null && break; sleep 0.05; done\n\
         \"$MITOKEN\" bridge --status-socket {sock} >/dev/null 2>&1 &\n\
         for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/50342) 2>/dev/null && break; sleep 0.05; done\n\
         curl -sS -f -H 'Metadata: true' 'http://127.0.0.1:50342/oauth2/token?resource=https%3A%2F%2Fvault.azure.net' >/dev/null",
        emulator(""),
        sock = socket.display()
    );
    let args = format!("--bridge-socket {}", socket.display());
    let Some(run) = doctor(&setup, &args, "", false) else {
        return;
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, 1, "{:#}", run.json);
    assert_eq!(run.status("legacy.listener"), "ok");
    assert!(run.detail("legacy.listener").contains("mitoken bridge"));
    assert_eq!(run.status("legacy.clients"), "warn");
    let clients = run.detail("legacy.clients");
    assert!(
        clients.contains("1 client(s)") && clients.contains("curl"),
        "{clients}"
    );
    run.others_ok(&["legacy.clients"]);
}
