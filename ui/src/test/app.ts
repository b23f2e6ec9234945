import type { Command, Snapshot } from '../lib/bindings';
import { app, load } from '../lib/stores.svelte';
import { snapshot } from './fixtures';

/** Puts the shared app state back to `snap` (default: alice, online, home). */
export function resetApp(snap: Snapshot = snapshot()): void {
  app.dismissOutcome();
  app.toasts = [];
  app.page = 'home';
  app.choosingServer = false;
  app.micLevel = 0;
  app.call = null;
  load(snap, app);
}

/** The commands sent through a mocked invoke. */
export function sentCommands(calls: unknown[][]): Command[] {
  return calls.filter(([cmd]) => cmd === 'send').map(([, args]) => (args as { cmd: Command }).cmd);
}
