//! Durable state in SQLite: accounts, sessions, contacts and call history.
//!
//! One connection behind a mutex; callers on the async side go through
//! [`Store::run`], which moves the work to a blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use beckon_protocol::{
    AvatarUrl, CallId, CallKind, DeviceId, DisplayName, HistoryEntry, HistoryMember, Outcome,
    UserId,
};
use rusqlite::{Connection, OptionalExtension, params};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (disk, corruption, lock).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Registration with an id that is taken.
    #[error("user id is taken")]
    UserExists,
    /// A row that the code cannot read back (written by a newer version?).
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// The blocking task running the query died.
    #[error("store task failed: {0}")]
    Task(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Migrations in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_sessions_expiry.sql"),
];

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Login name.
    pub id: UserId,
    /// Shown name.
    pub display_name: DisplayName,
    /// Picture.
    pub avatar_url: Option<AvatarUrl>,
}

/// A session as stored (the token itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Whose.
    pub user: UserId,
    /// Which device it was issued to.
    pub device: DeviceId,
    /// Unix ms after which it no longer works.
    pub expires_at: i64,
}

/// A finished call, with wall-clock times, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCall {
    /// The call.
    pub call_id: CallId,
    /// Video or voice.
    pub kind: CallKind,
    /// Who started it.
    pub inviter: UserId,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms, when a second member first accepted.
    pub connected_at: Option<i64>,
    /// Unix ms.
    pub ended_at: i64,
    /// Why it ended (wire name of the reason).
    pub end_reason: String,
    /// Everyone in it, with their outcome.
    pub members: Vec<(UserId, Outcome)>,
}

/// The database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// date. `:memory:` gives a private in-memory database.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Self {
            conn: Arc::new(Mutex::new(conn)),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.lock();
        let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a blocking thread, for callers on the async side.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    // --- accounts ------------------------------------------------------------

    /// Creates an account.
    pub fn create_user(
        &self,
        id: &UserId,
        display_name: &DisplayName,
        password_hash: &str,
        now: i64,
    ) -> Result<()> {
        let r = self.lock().execute(
            "INSERT INTO users (id, display_name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_str(), display_name.as_str(), password_hash, now],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::UserExists)
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    /// The stored password hash of `id`.
    pub fn password_hash(&self, id: &UserId) -> Result<Option<String>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT password_hash FROM users WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// One user.
    pub fn user(&self, id: &UserId) -> Result<Option<UserRow>> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT id, display_name, avatar_url FROM users WHERE id = ?1")?;
        let row = stmt.query_row([id.as_str()], raw_user).optional()?;
        row.map(parse_user).transpose()
    }

    /// The users among `ids` that exist, in the order asked.
    pub fn users(&self, ids: &[UserId]) -> Result<Vec<UserRow>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.user(id)? {
                found.push(u);
            }
        }
        Ok(found)
    }

    /// Changes a user's display name and/or avatar.
    pub fn update_profile(
        &self,
        id: &UserId,
        display_name: Option<&DisplayName>,
        avatar_url: Option<&AvatarUrl>,
    ) -> Result<()> {
        let conn = self.lock();
        if let Some(name) = display_name {
            conn.execute(
                "UPDATE users SET display_name = ?2 WHERE id = ?1",
                params![id.as_str(), name.as_str()],
            )?;
        }
        if let Some(url) = avatar_url {
            conn.execute(
                "UPDATE users SET avatar_url = ?2 WHERE id = ?1",
                params![id.as_str(), url.as_str()],
            )?;
        }
        Ok(())
    }

    /// Users whose id or display name contains `query` (case-insensitive),
    /// ids first.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<UserRow>> {
        let pattern = format!("%{}%", escape_like(&query.to_lowercase()));
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, display_name, avatar_url FROM users
             WHERE id LIKE ?1 ESCAPE '\\' OR lower(display_name) LIKE ?1 ESCAPE '\\'
             ORDER BY (id LIKE ?1 ESCAPE '\\') DESC, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![pattern, limit], raw_user)?;
        rows.map(|r| parse_user(r?)).collect()
    }

    // --- sessions -------------------------------------------------------------

    /// Stores a new session under the hash of its token.
    pub fn create_session(
        &self,
        token_hash: &[u8],
        user: &UserId,
        device: &DeviceId,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let conn = self.lock();
        // Expired sessions are of no use to anyone; sweep them as we go.
        conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, device_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash, user.as_str(), device.as_str(), now, expires_at],
        )?;
        Ok(())
    }

    /// The session stored under `token_hash`, expired or not.
    pub fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let conn = self.lock();
        let row: Option<(String, String, i64)> = conn
            .query_row(
                "SELECT user_id, device_id, expires_at FROM sessions WHERE token_hash = ?1",
                [token_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(u, d, expires_at)| {
            Ok(SessionRow {
                user: UserId::try_from(u).map_err(corrupt)?,
                device: DeviceId::try_from(d).map_err(corrupt)?,
                expires_at,
            })
        })
        .transpose()
    }

    /// Ends a session.
    pub fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        self.lock()
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    // --- contacts ------------------------------------------------------------

    /// `owner`'s contacts.
    pub fn contacts(&self, owner: &UserId) -> Result<Vec<UserRow>> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT u.id, u.display_name, u.avatar_url FROM contacts c JOIN users u ON u.id = c.contact
             WHERE c.owner = ?1 ORDER BY lower(u.display_name), u.id",
        )?;
        let rows = stmt.query_map([owner.as_str()], raw_user)?;
        rows.map(|r| parse_user(r?)).collect()
    }

    /// Adds `contact` to `owner`'s contacts (idempotent).
    pub fn add_contact(&self, owner: &UserId, contact: &UserId, now: i64) -> Result<()> {
        self.lock().execute(
            "INSERT OR IGNORE INTO contacts (owner, contact, created_at) VALUES (?1, ?2, ?3)",
            params![owner.as_str(), contact.as_str(), now],
        )?;
        Ok(())
    }

    /// Removes `contact` from `owner`'s contacts (idempotent).
    pub fn remove_contact(&self, owner: &UserId, contact: &UserId) -> Result<()> {
        self.lock().execute(
            "DELETE FROM contacts WHERE owner = ?1 AND contact = ?2",
            params![owner.as_str(), contact.as_str()],
        )?;
        Ok(())
    }

    /// Users who have `contact` among their contacts: they watch its presence.
    pub fn watchers(&self, contact: &UserId) -> Result<Vec<UserId>> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT owner FROM contacts WHERE contact = ?1")?;
        let rows = stmt.query_map([contact.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| UserId::try_from(r?).map_err(corrupt))
            .collect()
    }

    // --- history -------------------------------------------------------------

    /// Stores a finished call.
    pub fn record_call(&self, call: &StoredCall) -> Result<()> {
        self.record_calls(std::slice::from_ref(call))
    }

    /// Stores finished calls, all in one transaction.
    pub fn record_calls(&self, calls: &[StoredCall]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut insert_call = tx.prepare_cached(
                "INSERT INTO calls (call_id, kind, inviter, started_at, connected_at, ended_at, end_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut insert_member = tx.prepare_cached(
                "INSERT INTO call_members (seq, user_id, outcome) VALUES (?1, ?2, ?3)",
            )?;
            for call in calls {
                let seq = insert_call.insert(params![
                    call.call_id.as_str(),
                    kind_name(call.kind),
                    call.inviter.as_str(),
                    call.started_at,
                    call.connected_at,
                    call.ended_at,
                    call.end_reason,
                ])?;
                for (user, outcome) in &call.members {
                    insert_member.execute(params![seq, user.as_str(), outcome_name(*outcome)])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A page of `user`'s history, newest first, and the cursor of the next
    /// page when there is one.
    pub fn history(
        &self,
        user: &UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
        let conn = self.lock();
        let mut calls = conn.prepare_cached(
            "SELECT c.seq, c.call_id, c.kind, c.inviter, c.started_at, c.connected_at, c.ended_at, m.outcome
             FROM call_members m JOIN calls c ON c.seq = m.seq
             WHERE m.user_id = ?1 AND m.seq < ?2
             ORDER BY m.seq DESC LIMIT ?3",
        )?;
        type Row = (i64, String, String, String, i64, Option<i64>, i64, String);
        let rows: Vec<Row> = calls
            .query_map(
                params![
                    user.as_str(),
                    before.unwrap_or(i64::MAX),
                    i64::from(limit) + 1
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<_>>()?;
        let more = rows.len() > limit as usize;
        let mut members = conn.prepare_cached(
            "SELECT user_id, outcome FROM call_members WHERE seq = ?1 ORDER BY rowid",
        )?;
        let mut entries = Vec::new();
        let mut last_seq = None;
        for (seq, call_id, kind, inviter, started, connected, ended, outcome) in
            rows.into_iter().take(limit as usize)
        {
            let inviter = UserId::try_from(inviter).map_err(corrupt)?;
            let outcome = parse_outcome(&outcome)?;
            let list = members
                .query_map([seq], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .map(|r| {
                    let (u, o) = r?;
                    Ok(HistoryMember {
                        user: UserId::try_from(u).map_err(corrupt)?,
                        outcome: parse_outcome(&o)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            entries.push(HistoryEntry {
                call_id: CallId::try_from(call_id).map_err(corrupt)?,
                kind: parse_kind(&kind)?,
                missed: &inviter != user && is_missed(outcome),
                inviter,
                started_at_ms: started,
                duration_ms: connected.map_or(0, |c| (ended - c).max(0)),
                members: list,
                outcome,
            });
            last_seq = Some(seq);
        }
        Ok((entries, if more { last_seq } else { None }))
    }

    /// Incoming calls `user` missed that ended after they last marked
    /// history as seen.
    pub fn missed_count(&self, user: &UserId) -> Result<u32> {
        Ok(self.lock().query_row(
            "SELECT count(*) FROM call_members m JOIN calls c ON c.seq = m.seq JOIN users u ON u.id = m.user_id
             WHERE m.user_id = ?1 AND c.inviter != ?1 AND m.outcome IN ('missed', 'cancelled', 'busy')
               AND c.ended_at >= u.history_seen_at",
            [user.as_str()],
            |r| r.get(0),
        )?)
    }

    /// Marks every call that ended before `now` as seen.
    pub fn mark_history_seen(&self, user: &UserId, now: i64) -> Result<()> {
        self.lock().execute(
            "UPDATE users SET history_seen_at = ?2 WHERE id = ?1",
            params![user.as_str(), now + 1],
        )?;
        Ok(())
    }
}

fn is_missed(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Missed | Outcome::Cancelled | Outcome::Busy
    )
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

type RawUser = (String, String, Option<String>);

fn raw_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_user((id, name, avatar): RawUser) -> Result<UserRow> {
    Ok(UserRow {
        id: UserId::try_from(id).map_err(corrupt)?,
        display_name: DisplayName::try_from(name).map_err(corrupt)?,
        avatar_url: avatar
            .map(AvatarUrl::try_from)
            .transpose()
            .map_err(corrupt)?,
    })
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn kind_name(kind: CallKind) -> &'static str {
    match kind {
        CallKind::Video => "video",
        CallKind::Voice => "voice",
    }
}

fn parse_kind(s: &str) -> Result<CallKind> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(corrupt)
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Answered => "answered",
        Outcome::Missed => "missed",
        Outcome::Declined => "declined",
        Outcome::Cancelled => "cancelled",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
    }
}

fn parse_outcome(s: &str) -> Result<Outcome> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::try_from(s).unwrap()
    }

    fn store_with(users: &[&str]) -> Store {
        let s = Store::open(Path::new(":memory:")).unwrap();
        for u in users {
            let name = DisplayName::try_from(format!("{} Person", u.to_uppercase())).unwrap();
            s.create_user(&uid(u), &name, "hash", 0).unwrap();
        }
        s
    }

    fn call(n: u32, inviter: &str, members: &[(&str, Outcome)], ended_at: i64) -> StoredCall {
        StoredCall {
            call_id: CallId::try_from(format!("{n:032}")).unwrap(),
            kind: CallKind::Video,
            inviter: uid(inviter),
            started_at: ended_at - 10_000,
            connected_at: Some(ended_at - 5_000),
            ended_at,
            end_reason: "ended".into(),
            members: members.iter().map(|(u, o)| (uid(u), *o)).collect(),
        }
    }

    #[test]
    fn a_taken_user_id_is_refused() {
        let s = store_with(&["alice"]);
        let name = DisplayName::try_from("Other").unwrap();
        assert!(matches!(
            s.create_user(&uid("alice"), &name, "h", 1),
            Err(StoreError::UserExists)
        ));
    }

    #[test]
    fn search_matches_ids_and_names_case_insensitively() {
        let s = store_with(&["alice", "bob", "alicia"]);
        s.update_profile(
            &uid("bob"),
            Some(&DisplayName::try_from("Bob Alison").unwrap()),
            None,
        )
        .unwrap();
        let found: Vec<_> = s
            .search("ALI", 10)
            .unwrap()
            .into_iter()
            .map(|u| u.id.to_string())
            .collect();
        assert_eq!(found, vec!["alice", "alicia", "bob"]);
        assert!(
            s.search("%", 10).unwrap().is_empty(),
            "wildcards are literal"
        );
    }

    #[test]
    fn sessions_are_found_by_token_hash_and_deleted() {
        let s = store_with(&["alice"]);
        let dev = DeviceId::try_from("laptop").unwrap();
        s.create_session(b"hash1", &uid("alice"), &dev, 0, 1000)
            .unwrap();
        assert_eq!(s.session(b"hash1").unwrap().unwrap().device, dev);
        s.delete_session(b"hash1").unwrap();
        assert!(s.session(b"hash1").unwrap().is_none());
    }

    #[test]
    fn history_pages_newest_first_and_counts_missed_calls() {
        let s = store_with(&["alice", "bob", "carol"]);
        s.record_call(&call(
            1,
            "alice",
            &[("alice", Outcome::Answered), ("bob", Outcome::Answered)],
            100_000,
        ))
        .unwrap();
        s.record_call(&call(
            2,
            "alice",
            &[("alice", Outcome::NoAnswer), ("bob", Outcome::Missed)],
            200_000,
        ))
        .unwrap();
        s.record_call(&call(
            3,
            "carol",
            &[("carol", Outcome::NoAnswer), ("bob", Outcome::Busy)],
            300_000,
        ))
        .unwrap();
        let (page, next) = s.history(&uid("bob"), None, 2).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].inviter, uid("carol"));
        assert!(page[0].missed && page[1].missed);
        assert_eq!(page[1].outcome, Outcome::Missed);
        let (rest, next2) = s.history(&uid("bob"), next, 2).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].duration_ms, 5_000);
        assert!(!rest[0].missed);
        assert_eq!(next2, None);
        assert_eq!(s.missed_count(&uid("bob")).unwrap(), 2);
        assert_eq!(
            s.missed_count(&uid("alice")).unwrap(),
            0,
            "outgoing calls are never missed"
        );
        s.mark_history_seen(&uid("bob"), 300_000).unwrap();
        assert_eq!(s.missed_count(&uid("bob")).unwrap(), 0);
        s.record_call(&call(
            4,
            "alice",
            &[("alice", Outcome::NoAnswer), ("bob", Outcome::Cancelled)],
            400_000,
        ))
        .unwrap();
        assert_eq!(s.missed_count(&uid("bob")).unwrap(), 1);
    }

    #[test]
    fn a_batch_of_calls_is_stored_each_with_its_own_members() {
        let s = store_with(&["alice", "bob", "carol"]);
        s.record_calls(&[
            call(
                1,
                "alice",
                &[("alice", Outcome::Answered), ("bob", Outcome::Answered)],
                100_000,
            ),
            call(
                2,
                "carol",
                &[("carol", Outcome::NoAnswer), ("bob", Outcome::Missed)],
                200_000,
            ),
            call(
                3,
                "alice",
                &[("alice", Outcome::NoAnswer), ("carol", Outcome::Busy)],
                300_000,
            ),
        ])
        .unwrap();
        let seen = |user: &str| -> Vec<(String, Outcome)> {
            let (page, _) = s.history(&uid(user), None, 10).unwrap();
            page.into_iter()
                .map(|e| (e.inviter.to_string(), e.outcome))
                .collect()
        };
        assert_eq!(
            seen("bob"),
            vec![
                ("carol".to_owned(), Outcome::Missed),
                ("alice".to_owned(), Outcome::Answered)
            ]
        );
        assert_eq!(
            seen("carol"),
            vec![
                ("alice".to_owned(), Outcome::Busy),
                ("carol".to_owned(), Outcome::NoAnswer)
            ]
        );
        assert_eq!(s.missed_count(&uid("bob")).unwrap(), 1);
    }

    #[test]
    fn contacts_and_their_watchers() {
        let s = store_with(&["alice", "bob", "carol"]);
        s.add_contact(&uid("alice"), &uid("bob"), 0).unwrap();
        s.add_contact(&uid("alice"), &uid("bob"), 0).unwrap();
        s.add_contact(&uid("carol"), &uid("bob"), 0).unwrap();
        assert_eq!(s.contacts(&uid("alice")).unwrap().len(), 1);
        let mut w = s.watchers(&uid("bob")).unwrap();
        w.sort();
        assert_eq!(w, vec![uid("alice"), uid("carol")]);
        s.remove_contact(&uid("alice"), &uid("bob")).unwrap();
        assert!(s.contacts(&uid("alice")).unwrap().is_empty());
    }

    #[test]
    fn history_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beckon.db");
        {
            let s = Store::open(&path).unwrap();
            s.create_user(&uid("alice"), &DisplayName::try_from("A").unwrap(), "h", 0)
                .unwrap();
            s.create_user(&uid("bob"), &DisplayName::try_from("B").unwrap(), "h", 0)
                .unwrap();
            s.record_call(&call(
                1,
                "alice",
                &[("alice", Outcome::Answered), ("bob", Outcome::Answered)],
                1000,
            ))
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.history(&uid("bob"), None, 10).unwrap().0.len(), 1);
    }
}
