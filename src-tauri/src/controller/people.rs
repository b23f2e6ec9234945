//! People: names and profiles, contacts and call history.

use beckon_protocol::UserId;

use super::Actor;
use super::convert::{self, person, stranger};
use crate::host::{self, Host};
use crate::view::{Person, UiEvent};

impl Actor {
    pub(super) fn is_echo(&self, id: &str) -> bool {
        self.host.as_ref().is_some_and(Host::has_echo) && id == host::ECHO_USER
    }

    pub(super) fn remember(&mut self, p: &beckon_protocol::UserProfile) -> Person {
        let person = person(p, self.is_echo(p.id.as_str()));
        self.people.insert(person.id.clone(), person.clone());
        person
    }

    pub(super) fn who(&self, id: &UserId) -> Person {
        if let Some(me) = self.me.as_ref().filter(|m| m.id == id.as_str()) {
            return me.clone();
        }
        self.people
            .get(id.as_str())
            .cloned()
            .unwrap_or_else(|| stranger(id))
    }

    /// Fetches the profiles of people we have not seen yet.
    pub(super) async fn learn(&mut self, ids: impl IntoIterator<Item = UserId>) {
        let mut unknown: Vec<UserId> = ids
            .into_iter()
            .filter(|u| !self.people.contains_key(u.as_str()))
            .collect();
        unknown.sort();
        unknown.dedup();
        let Some(client) = self.client.clone() else {
            return;
        };
        for chunk in unknown.chunks(beckon_protocol::limits::MAX_USERS_PER_REQUEST) {
            if let Ok(found) = client.get_users(chunk.to_vec()).await {
                for p in &found {
                    self.remember(p);
                }
            }
        }
    }

    pub(super) async fn refresh_contacts(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        match client.contacts().await {
            Ok(list) => {
                self.contacts = list.iter().map(|p| self.remember(p).id).collect();
                // The echo test is everyone's contact on a hosted server.
                if self.host.as_ref().is_some_and(Host::has_echo)
                    && !self.contacts.iter().any(|c| c == host::ECHO_USER)
                    && self.me.as_ref().is_some_and(|m| m.id != host::ECHO_USER)
                    && let Ok(echo) = host::ECHO_USER.parse::<UserId>()
                    && client.add_contact(echo.clone()).await.is_ok()
                {
                    self.learn([echo]).await;
                    self.contacts.insert(0, host::ECHO_USER.to_owned());
                }
                self.contacts.sort_by_key(|c| c != host::ECHO_USER);
                self.emit_contacts();
            }
            Err(e) => tracing::warn!(error = %e, "contacts not loaded"),
        }
    }

    pub(super) async fn refresh_history(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let Some(me) = client.me() else { return };
        let Ok((entries, _)) = client.history(None, Some(50)).await else {
            return;
        };
        let people: Vec<UserId> = entries
            .iter()
            .flat_map(|e| e.members.iter().map(|m| m.user.clone()))
            .collect();
        self.learn(people).await;
        self.history = entries
            .iter()
            .map(|e| convert::history_item(e, &me, |u| self.who(u)))
            .collect();
        self.missed = client.missed_count().await.unwrap_or(self.missed);
        self.emit_history();
    }

    pub(super) fn emit_contacts(&self) {
        self.ui(UiEvent::Contacts {
            contacts: self.contact_list(),
        });
    }

    pub(super) fn contact_list(&self) -> Vec<Person> {
        self.contacts
            .iter()
            .filter_map(|c| self.people.get(c).cloned())
            .collect()
    }

    pub(super) fn emit_history(&self) {
        self.ui(UiEvent::History {
            history: self.history.clone(),
            missed: self.missed,
        });
    }
}
