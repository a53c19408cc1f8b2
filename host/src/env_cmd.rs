//! `mitoken env SOURCE --endpoint URL`: the `export` lines that point SDKs at a running
//! `mitoken emulate --source SOURCE` (the same variables as its `--env-file`).
//!
//! The secret of App Service, App Service 2017 and Azure ML is not served by the emulator (an
//! endpoint that handed it out would defeat the header that protects against SSRF): give it
//! with `--secret` or `MITOKEN_SECRET`, from the emulator's `--env-file`.

use crate::cli::EnvArgs;
use crate::emulate::sources::{env_pairs, has_secret, is_served};
use crate::exit::Failure;

/// Prints the `export` lines for `args`.
pub fn run(args: &EnvArgs) -> Result<(), Failure> {
    let source = args.source;
    if !is_served(source) {
        eprintln!("mitoken env: source {source} is not served by this build's emulator");
        return Err(Failure::Usage);
    }
    let endpoint = args.endpoint.trim_end_matches('/');
    let Some(rest) = endpoint.strip_prefix("http://") else {
        eprintln!("mitoken env: --endpoint must be the emulator's http:// base URL");
        return Err(Failure::Usage);
    };
    if rest.is_empty() || rest.contains('/') {
        eprintln!(
            "mitoken env: --endpoint must be the emulator's base URL (http://HOST:PORT, no path)"
        );
        return Err(Failure::Usage);
    }
    let secret = args
        .secret
        .clone()
        .or_else(|| std::env::var("MITOKEN_SECRET").ok());
    if has_secret(source) && secret.as_deref().is_none_or(str::is_empty) {
        eprintln!(
            "mitoken env: {source} needs the emulator's secret: --secret or MITOKEN_SECRET \
             (the emulator writes it to its --env-file)"
        );
        return Err(Failure::Usage);
    }
    let pairs = env_pairs(
        source,
        endpoint,
        secret.as_deref(),
        args.client_id.as_deref(),
    );
    for (key, value) in pairs {
        println!("export {key}={}", shell_quote(&value));
    }
    Ok(())
}

/// `value` in single quotes for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
