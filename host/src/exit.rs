//! Exit codes of the `mitoken` binary (documented in docs/token.md).

/// Why a command failed; each kind has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 1: a bug or an environment problem (cannot start the runtime, write stdout…).
    Internal,
    /// 2: the command line or a value in it is invalid (nothing was sent).
    Usage,
    /// 3: the token service answered with an error (HTTP status and text are printed).
    Service,
    /// 4: the service could not be reached: connection refused, timeout, reset.
    Network,
    /// 5: the service answered something that is not a valid token response.
    Protocol,
}

impl Failure {
    /// The process exit code for this failure.
    pub fn code(self) -> u8 {
        match self {
            Failure::Internal => 1,
            Failure::Usage => 2,
            Failure::Service => 3,
            Failure::Network => 4,
            Failure::Protocol => 5,
        }
    }
}
