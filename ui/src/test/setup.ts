import '@testing-library/jest-dom/vitest';
import { afterEach } from 'vitest';
import { cleanup } from '@testing-library/svelte';

afterEach(() => cleanup());

// jsdom has no canvas drawing and no ResizeObserver; the app copes with
// neither (video tiles stay on the avatar), so stub them quietly.
HTMLCanvasElement.prototype.getContext = (() => null) as unknown as HTMLCanvasElement['getContext'];

if (!('ResizeObserver' in globalThis)) {
  class NoResize {
    observe() {}
    unobserve() {}
    disconnect() {}
  }
  (globalThis as unknown as { ResizeObserver: unknown }).ResizeObserver = NoResize;
}
