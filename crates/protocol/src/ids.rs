//! Identifiers and bounded strings, checked once at the edge by `TryFrom` and
//! trusted afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits;

/// Why a string was refused as an identifier or bounded field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field that was refused, e.g. `user_id`.
    pub field: &'static str,
    /// What is wrong with it, in words a person can act on.
    pub problem: String,
}

impl FieldError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

fn check_len(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let n = s.chars().count();
    if n < min || s.len() > max * 4 || n > max {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters long (got {n})"),
        ));
    }
    Ok(())
}

fn check_chars(
    field: &'static str,
    s: &str,
    allowed: impl Fn(char) -> bool,
    what: &str,
) -> Result<(), FieldError> {
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(FieldError::new(
            field,
            format!("{c:?} is not allowed; use {what}"),
        )),
        None => Ok(()),
    }
}

/// Defines a validated string newtype: `TryFrom<String>`/`TryFrom<&str>`,
/// `FromStr`, and serde through the check. Public strings also get
/// `Display`, `AsRef<str>` and a plain `Debug`; `secret` ones get only
/// `expose()` and a `Debug` that never shows the value.
macro_rules! checked_string {
    (@common $(#[$meta:meta])* $name:ident, $validate:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                let validate: fn(&str) -> Result<(), FieldError> = $validate;
                validate(&s)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(s: &str) -> Result<Self, FieldError> {
                Self::try_from(s.to_owned())
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::try_from(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
    (secret $(#[$meta:meta])* $name:ident, $validate:expr) => {
        checked_string!(@common $(#[$meta])* $name, $validate);

        impl $name {
            /// The secret itself: for the wire, the hasher and the store only.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, $validate:expr) => {
        checked_string!(@common $(#[$meta])* $name, $validate);

        impl $name {
            /// The checked string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

checked_string!(
    /// A user's login name: 3–32 characters of `a-z`, `0-9`, `_`, `.`, `-`,
    /// starting with a letter or digit.
    UserId,
    |s| {
        check_len("user_id", s, limits::USER_ID_MIN, limits::USER_ID_MAX)?;
        check_chars(
            "user_id",
            s,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'),
            "lowercase letters, digits, '_', '.' or '-'",
        )?;
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(FieldError::new("user_id", "must start with a letter or digit"));
        }
        Ok(())
    }
);

checked_string!(
    /// One installation of a client (a desktop, a headless peer): 1–64
    /// characters of `A-Z`, `a-z`, `0-9`, `_`, `-`. A user may be signed in on
    /// several devices at once.
    DeviceId,
    |s| {
        check_len("device_id", s, 1, limits::DEVICE_ID_MAX)?;
        check_chars(
            "device_id",
            s,
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
            "letters, digits, '_' or '-'",
        )
    }
);

checked_string!(
    /// A call (and its media room). Generated by the server from 128 random
    /// bits; clients only echo it back.
    CallId,
    |s| {
        check_len("call_id", s, limits::CALL_ID_MIN, limits::CALL_ID_MAX)?;
        check_chars("call_id", s, |c| c.is_ascii_alphanumeric(), "letters and digits")
    }
);

checked_string!(
    /// A name shown to people: 1–64 characters, no control characters, not
    /// only spaces.
    DisplayName,
    |s| {
        check_len("display_name", s, 1, limits::DISPLAY_NAME_MAX)?;
        check_chars("display_name", s, |c| !c.is_control(), "printable characters")?;
        if s.trim().is_empty() {
            return Err(FieldError::new("display_name", "must not be blank"));
        }
        Ok(())
    }
);

checked_string!(
    /// Free-form data the application attaches to an invitation or an answer
    /// (the seed's `extendedData`): at most 4 KiB of UTF-8.
    ExtendedData,
    |s| {
        if s.len() > limits::EXTENDED_DATA_MAX {
            return Err(FieldError::new(
                "extended_data",
                format!("must be at most {} bytes (got {})", limits::EXTENDED_DATA_MAX, s.len()),
            ));
        }
        Ok(())
    }
);

checked_string!(
    /// Where a user's picture lives: an `https://` (or `http://`) URL of at most
    /// 512 characters.
    AvatarUrl,
    |s| {
        check_len("avatar_url", s, 8, limits::AVATAR_URL_MAX)?;
        check_chars("avatar_url", s, |c| c.is_ascii_graphic(), "a URL without spaces")?;
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            return Err(FieldError::new("avatar_url", "must start with https:// or http://"));
        }
        Ok(())
    }
);

checked_string!(
    /// A session description (SDP offer or answer), relayed as is: at most
    /// 48 KiB.
    Sdp,
    |s| {
        if s.is_empty() || s.len() > limits::SDP_MAX_BYTES {
            return Err(FieldError::new(
                "sdp",
                format!("must be 1 to {} bytes (got {})", limits::SDP_MAX_BYTES, s.len()),
            ));
        }
        Ok(())
    }
);

checked_string!(
    /// One ICE candidate line (or an `a=`-less candidate attribute), at most
    /// 1 KiB, no line breaks.
    IceCandidate,
    |s| {
        if s.len() > limits::CANDIDATE_MAX_BYTES {
            return Err(FieldError::new(
                "candidate",
                format!("must be at most {} bytes", limits::CANDIDATE_MAX_BYTES),
            ));
        }
        check_chars("candidate", s, |c| !c.is_control(), "one line of text")
    }
);

checked_string!(
    /// What to look for in the user directory: 1–64 characters.
    SearchQuery,
    |s| {
        check_len("query", s, 1, limits::SEARCH_QUERY_MAX)?;
        check_chars("query", s, |c| !c.is_control(), "printable characters")
    }
);

// The struct comes from a macro that cannot derive `Default` for one type only.
#[allow(clippy::derivable_impls)]
impl Default for ExtendedData {
    fn default() -> Self {
        Self(String::new())
    }
}

impl ExtendedData {
    /// True when nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

checked_string!(
    secret
    /// A password as sent at registration or login; at most 256 bytes.
    Password,
    |s| {
        if s.len() > limits::PASSWORD_MAX_BYTES {
            return Err(FieldError::new(
                "password",
                format!("must be at most {} bytes", limits::PASSWORD_MAX_BYTES),
            ));
        }
        Ok(())
    }
);

checked_string!(
    secret
    /// A session token handed out at login; sent back to resume.
    SessionToken,
    |s| {
        check_len("token", s, 16, limits::TOKEN_MAX)?;
        check_chars("token", s, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'), "base64url")
    }
);

/// Correlates a request with its reply; chosen by the client.
pub type RequestId = u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked_once_at_the_edge() {
        assert!(UserId::try_from("alice").is_ok());
        assert!(UserId::try_from("bob.smith-2").is_ok());
        assert!(UserId::try_from("al").is_err());
        assert!(UserId::try_from("Alice").is_err());
        assert!(UserId::try_from("_alice").is_err());
        assert!(UserId::try_from("a".repeat(33)).is_err());
        let err = UserId::try_from("al ice").unwrap_err();
        assert_eq!(err.field, "user_id");
    }

    #[test]
    fn ids_refuse_bad_input_when_deserialized() {
        let r: Result<UserId, _> = serde_json::from_str("\"ALICE\"");
        assert!(r.is_err());
        let r: Result<CallId, _> = serde_json::from_str("\"abc/../x\"");
        assert!(r.is_err());
        let ok: DeviceId = serde_json::from_str("\"laptop-1\"").unwrap();
        assert_eq!(ok.as_str(), "laptop-1");
    }

    #[test]
    fn extended_data_is_limited_to_4_kib() {
        assert!(ExtendedData::try_from("x".repeat(4096)).is_ok());
        assert!(ExtendedData::try_from("x".repeat(4097)).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let p = Password::try_from("hunter22").unwrap();
        assert!(!format!("{p:?}").contains("hunter22"));
        let t = SessionToken::try_from("abcdefghijklmnopqrstuvwxyz").unwrap();
        assert!(!format!("{t:?}").contains("abcdef"));
    }

    #[test]
    fn display_names_must_be_printable_and_not_blank() {
        assert!(DisplayName::try_from("Alice Liddell").is_ok());
        assert!(DisplayName::try_from("   ").is_err());
        assert!(DisplayName::try_from("a\u{7}b").is_err());
        assert!(DisplayName::try_from("é".repeat(64)).is_ok());
        assert!(DisplayName::try_from("é".repeat(65)).is_err());
    }
}
