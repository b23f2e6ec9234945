-- Accounts, sessions, contacts and call history.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    avatar_url      TEXT,
    password_hash   TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Calls that ended before this instant (Unix ms) count as seen.
    history_seen_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE contacts (
    owner      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    contact    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, contact)
);
CREATE INDEX contacts_reverse ON contacts(contact);

CREATE TABLE calls (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id      TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    inviter      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    connected_at INTEGER,
    ended_at     INTEGER NOT NULL,
    end_reason   TEXT NOT NULL
);

CREATE TABLE call_members (
    seq     INTEGER NOT NULL REFERENCES calls(seq) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (seq, user_id)
);
CREATE INDEX call_members_user ON call_members(user_id, seq);
