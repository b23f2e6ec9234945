//! The client's one error type.

use beckon_protocol::{ErrorBody, ErrorCode, Reply};

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the request; the code says why.
    #[error("{0}")]
    Server(ErrorBody),
    /// Sign-in was refused (wrong password, taken id, expired session).
    #[error("sign-in refused: {0}")]
    SignIn(ErrorBody),
    /// The server could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection dropped before the answer came; it is being restored.
    #[error("disconnected from the server")]
    Disconnected,
    /// No answer in time.
    #[error("the server did not answer in time")]
    Timeout,
    /// The client has stopped.
    #[error("the client is closed")]
    Closed,
    /// The server answered with something this client does not expect.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

impl ClientError {
    pub(crate) fn unexpected(reply: &Reply) -> Self {
        Self::Unexpected(format!("{reply:?}"))
    }

    /// The server's error code, when the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server(e) | Self::SignIn(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether trying again later may work: network trouble and transient
    /// server errors may; refusals (busy, not a member, bad password) won't.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Server(e) => e.code.is_retryable(),
            Self::SignIn(_) | Self::Closed | Self::Unexpected(_) => false,
            Self::Connect(_) | Self::Disconnected | Self::Timeout => true,
        }
    }
}
