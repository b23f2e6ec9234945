import type { Call, HistoryItem, Member, Person, Quality } from './bindings';

/** Members of `call` other than us that are still involved (not gone). */
export function activeMembers(call: Call, meId: string | undefined): Member[] {
  return call.members.filter((m) => m.person.id !== meId && m.status !== 'gone');
}

/** For the incoming dialog: the others invited besides us and the inviter. */
export function otherInvitees(call: Call, meId: string | undefined): Person[] {
  return activeMembers(call, meId)
    .filter((m) => m.person.id !== call.inviter.id)
    .map((m) => m.person);
}

/** For the waiting page: who we are ringing. */
export function callees(call: Call, meId: string | undefined): Person[] {
  return activeMembers(call, meId).map((m) => m.person);
}

/** Contacts that can be added to `call` (not already involved, not us). */
export function addableContacts(contacts: Person[], call: Call, meId: string | undefined): Person[] {
  const inCall = new Set(activeMembers(call, meId).map((m) => m.person.id));
  inCall.add(call.inviter.id);
  return contacts.filter((c) => c.id !== meId && !inCall.has(c.id));
}

export const QUALITY_LABEL: Record<Quality, string> = {
  good: 'Good',
  fair: 'Fair',
  poor: 'Poor',
  connecting: 'Connecting',
  reconnecting: 'Reconnecting',
};

const OUTCOME_LABEL: Record<string, string> = {
  answered: 'Answered',
  missed: 'Missed',
  declined: 'Declined',
  cancelled: 'Cancelled',
  busy: 'Busy',
  failed: 'Failed',
  no_answer: 'No answer',
};

/** A history outcome for people ("no_answer" → "No answer"). */
export function outcomeLabel(item: HistoryItem): string {
  if (item.missed) return 'Missed';
  const known = OUTCOME_LABEL[item.outcome];
  if (known) return known;
  const words = item.outcome.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Names of the others in a past call. */
export function historyNames(item: HistoryItem): string {
  return item.with.map((p) => p.name || p.id).join(', ') || 'Unknown';
}
