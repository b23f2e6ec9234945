// The app's state: one object, filled by load(snapshot) and kept current by
// applyEvent(event). Views read it; only commands change the backend.
import type {
  Call,
  CallOutcome,
  Connection,
  Devices,
  HistoryItem,
  Person,
  ServerView,
  Snapshot,
  UiEvent,
} from './bindings';

/** How long the waiting page shows why the call did not connect. */
export const OUTCOME_SHOW_MS = 3000;
/** How long the waiting page waits for that reason once the call is gone. */
export const OUTCOME_WAIT_MS = 1500;
/** How long a toast stays. */
export const TOAST_MS = 6000;

export interface Toast {
  id: number;
  message: string;
}

export type Page = 'home' | 'settings';

export const emptyDevices = (): Devices => ({
  cameras: [],
  microphones: [],
  speakers: [],
  camera: '',
  microphone: '',
  speaker: '',
  problems: [],
});

export class AppState {
  loaded = $state(false);
  connection = $state<Connection>({ state: 'noServer' });
  server = $state<ServerView | null>(null);
  me = $state<Person | null>(null);
  contacts = $state<Person[]>([]);
  history = $state<HistoryItem[]>([]);
  missed = $state(0);
  call = $state<Call | null>(null);
  devices = $state<Devices>(emptyDevices());
  lastUser = $state<string | null>(null);
  /** Microphone RMS 0–1. */
  micLevel = $state(0);
  /** When the next reconnect attempt starts (Date.now() ms). */
  reconnectAtMs = $state<number | null>(null);
  /** Why our last invitation ended (shown on the waiting page). */
  lastOutcome = $state<CallOutcome | null>(null);
  /** Our invitation that just ended: the waiting page stays for it a moment. */
  endedOutgoing = $state<Call | null>(null);
  toasts = $state<Toast[]>([]);
  /** Home or settings (when no call takes the window). */
  page = $state<Page>('home');
  /** The sign-in page's "Change server" was chosen. */
  choosingServer = $state(false);

  private outcomeTimer: ReturnType<typeof setTimeout> | null = null;
  private toastSeq = 0;

  /** Forgets the waiting page's outcome (its time is up, or a new call came). */
  dismissOutcome(): void {
    if (this.outcomeTimer !== null) clearTimeout(this.outcomeTimer);
    this.outcomeTimer = null;
    this.lastOutcome = null;
    this.endedOutgoing = null;
  }

  private dismissOutcomeIn(ms: number): void {
    if (this.outcomeTimer !== null) clearTimeout(this.outcomeTimer);
    this.outcomeTimer = setTimeout(() => this.dismissOutcome(), ms);
  }

  pushToast(message: string): void {
    const id = ++this.toastSeq;
    this.toasts = [...this.toasts, { id, message }];
    setTimeout(() => this.dismissToast(id), TOAST_MS);
  }

  dismissToast(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  setConnection(connection: Connection, server: ServerView | null, me: Person | null, nowMs: number): void {
    this.connection = connection;
    this.server = server;
    this.me = me;
    this.reconnectAtMs = connection.state === 'reconnecting' ? nowMs + connection.retryInMs : null;
    if (me) this.lastUser = me.id;
    else this.page = 'home';
    if (connection.state !== 'noServer' && connection.state !== 'signedOut') this.choosingServer = false;
  }

  setCall(call: Call | null): void {
    const prev = this.call;
    if (call === null && prev?.phase === 'outgoing') {
      this.endedOutgoing = prev;
      if (this.lastOutcome?.id !== prev.id) this.dismissOutcomeIn(OUTCOME_WAIT_MS);
    }
    if (call !== null && this.endedOutgoing && this.endedOutgoing.id !== call.id) this.dismissOutcome();
    this.call = call;
  }

  callEnded(outcome: CallOutcome): void {
    const waitingOn =
      this.call?.phase === 'outgoing' && this.call.id === outcome.id
        ? this.call
        : this.endedOutgoing?.id === outcome.id
          ? this.endedOutgoing
          : null;
    if (waitingOn) {
      this.lastOutcome = outcome;
      this.endedOutgoing = waitingOn;
      this.dismissOutcomeIn(OUTCOME_SHOW_MS);
    } else {
      this.pushToast(outcome.message);
    }
  }
}

/** The one state the app shows. */
export const app = new AppState();

/** Takes the whole state (start-up). */
export function load(snap: Snapshot, s: AppState = app, nowMs = Date.now()): void {
  s.setConnection(snap.connection, snap.server, snap.me, nowMs);
  s.contacts = snap.contacts;
  s.history = snap.history;
  s.missed = snap.missed;
  s.call = snap.call;
  s.devices = snap.devices;
  s.lastUser = snap.lastUser ?? snap.me?.id ?? null;
  s.loaded = true;
}

/** Takes one event: each replaces its part of the state, or is a one-off. */
export function applyEvent(ev: UiEvent, s: AppState = app, nowMs = Date.now()): void {
  switch (ev.type) {
    case 'connection':
      s.setConnection(ev.connection, ev.server, ev.me, nowMs);
      break;
    case 'contacts':
      s.contacts = ev.contacts;
      break;
    case 'history':
      s.history = ev.history;
      s.missed = ev.missed;
      break;
    case 'call':
      s.setCall(ev.call);
      break;
    case 'callEnded':
      s.callEnded(ev.outcome);
      break;
    case 'devices':
      s.devices = ev.devices;
      break;
    case 'micLevel':
      s.micLevel = ev.level;
      break;
    case 'problem':
      s.pushToast(ev.message);
      break;
  }
}

export type Route = 'loading' | 'serverChoice' | 'signIn' | 'home' | 'settings' | 'waiting' | 'calling';

/** Which page the state asks for (the incoming dialog overlays it). */
export function route(s: AppState): Route {
  if (!s.loaded) return 'loading';
  const state = s.connection.state;
  if (state === 'noServer' || (s.choosingServer && !s.me)) return 'serverChoice';
  if (state === 'signedOut' || !s.me) return 'signIn';
  if (s.call?.phase === 'connected') return 'calling';
  if (s.call?.phase === 'outgoing' || (!s.call && s.endedOutgoing)) return 'waiting';
  return s.page === 'settings' ? 'settings' : 'home';
}

/** The incoming dialog is up. */
export function ringing(s: AppState): boolean {
  return s.call?.phase === 'incoming' && !!s.me;
}
