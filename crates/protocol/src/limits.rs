//! Limits every party enforces. The server checks them before anything else.

/// Largest message either side accepts, in bytes of JSON text. Larger
/// messages get `too_large` and are dropped; the connection lives.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A WebSocket frame above this closes the connection: it is not a Beckon
/// message that went a little over, it is abuse.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Shortest user id.
pub const USER_ID_MIN: usize = 3;
/// Longest user id.
pub const USER_ID_MAX: usize = 32;
/// Longest device id.
pub const DEVICE_ID_MAX: usize = 64;
/// Shortest call id accepted on the wire.
pub const CALL_ID_MIN: usize = 16;
/// Longest call id accepted on the wire.
pub const CALL_ID_MAX: usize = 64;
/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Longest avatar URL, in characters.
pub const AVATAR_URL_MAX: usize = 512;
/// Largest `extended_data`, in bytes.
pub const EXTENDED_DATA_MAX: usize = 4 * 1024;
/// Shortest password a new account may choose, in bytes.
pub const PASSWORD_MIN_BYTES: usize = 8;
/// Longest password, in bytes (argon2 has no use for more).
pub const PASSWORD_MAX_BYTES: usize = 256;
/// Longest session token.
pub const TOKEN_MAX: usize = 128;
/// Longest SDP blob relayed between peers, in bytes.
pub const SDP_MAX_BYTES: usize = 48 * 1024;
/// Longest ICE candidate line, in bytes.
pub const CANDIDATE_MAX_BYTES: usize = 1024;
/// Most users named in one invite, add, cancel or lookup.
pub const MAX_USERS_PER_REQUEST: usize = 32;
/// Longest directory search string, in characters.
pub const SEARCH_QUERY_MAX: usize = 64;
/// Most rows in one page of search results or history.
pub const MAX_PAGE: u32 = 100;

/// Ring timeout when the caller gives none, in seconds.
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 60;
/// Shortest ring timeout, in seconds.
pub const MIN_RING_TIMEOUT_SECS: u32 = 1;
/// Longest ring timeout, in seconds.
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;
/// Default cap on members in one call (server-configurable).
pub const DEFAULT_MAX_CALL_MEMBERS: usize = 10;

/// Refuses a request that names more than [`MAX_USERS_PER_REQUEST`] users.
pub fn check_user_count(n: usize) -> Result<(), crate::ErrorBody> {
    if n > MAX_USERS_PER_REQUEST {
        return Err(crate::ErrorBody::new(
            crate::ErrorCode::Invalid,
            format!("name at most {MAX_USERS_PER_REQUEST} users at once"),
        ));
    }
    Ok(())
}
