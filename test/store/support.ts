/**
 * Test support for the store: a real SQLite file in a fresh temp dir per test, on a FakeClock,
 * closed and removed after the test (and checked to have been closed exactly once).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { Store } from '../../src/store/index.ts';

export interface TempStore {
  readonly store: Store;
  readonly clock: FakeClock;
  readonly dir: string;
  readonly path: string;
}

const dirs: string[] = [];
const stores: Store[] = [];

afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hushpay-store-'));
  dirs.push(dir);
  return dir;
}

/** Registers a store for closing after the test (close is idempotent). */
export function track(store: Store): Store {
  stores.push(store);
  return store;
}

export function openTempStore(clock = new FakeClock()): TempStore {
  const dir = tempDir();
  const path = join(dir, 'data', Store.DEFAULT_FILE);
  const store = track(Store.open(path, { clock }));
  return { store, clock, dir, path };
}
