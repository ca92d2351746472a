import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StoreInputError, StoreNotFoundError } from '../../src/store/errors.ts';
import { openTempStore } from './support.ts';

const PASSWORD = 'kanji-and-7-digits';

describe('SessionRepository', () => {
  it('gives a session until its expiry on the injected clock, and none from then on', async () => {
    const { store, clock } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });

    const session = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: true });

    expect(session.expiresAt).toBe('2026-11-21T00:01:00.000Z');
    expect(store.sessions.get(session.token)).toEqual({ userId: user.id, csrfToken: session.csrfToken, expiresAt: session.expiresAt, mfaPassed: true });
    clock.advance(59_999);
    expect(store.sessions.get(session.token)).toBeDefined();
    clock.advance(1);
    expect(store.sessions.get(session.token)).toBeUndefined();
  });

  it('knows no token it did not give, and keeps only the token hash', async () => {
    const { store, path } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });
    const session = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: false });

    // its last character changed (to one it is not)
    const last = session.token.at(-1) === 'A' ? 'B' : 'A';
    expect(store.sessions.get(`${session.token.slice(0, -1)}${last}`)).toBeUndefined();
    expect(store.sessions.get('')).toBeUndefined();
    store.close();
    const bytes = Buffer.concat([readFileSync(path), readFileSync(`${path}-wal`, { flag: 'a+' })]);
    expect(bytes.includes(session.token)).toBe(false);
    expect(bytes.includes(createHash('sha256').update(session.token).digest())).toBe(true);
  });

  it('logs one session out, or every session of a user', async () => {
    const { store } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });
    const a = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: false });
    const b = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: false });
    const c = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: false });

    store.sessions.delete(a.token);
    store.sessions.delete('unknown');

    expect(store.sessions.get(a.token)).toBeUndefined();
    expect(store.sessions.get(b.token)).toBeDefined();
    expect(store.sessions.deleteForUser(user.id)).toBe(2);
    expect(store.sessions.get(c.token)).toBeUndefined();
  });

  it('prunes expired sessions only', async () => {
    const { store, clock } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });
    store.sessions.create(user.id, { ttlMs: 1_000, mfaPassed: false });
    const long = store.sessions.create(user.id, { ttlMs: 10_000, mfaPassed: false });

    clock.advance(1_000);

    expect(store.sessions.prune()).toBe(1);
    expect(store.sessions.prune()).toBe(0);
    expect(store.sessions.get(long.token)).toBeDefined();
  });

  it('refuses a session for an unknown or disabled user, and a bad ttl', async () => {
    const { store } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });

    expect(() => store.sessions.create(user.id, { ttlMs: 0, mfaPassed: false })).toThrow(StoreInputError);
    expect(() => store.sessions.create('usr_nope', { ttlMs: 1000, mfaPassed: false })).toThrow(StoreNotFoundError);
    store.users.disable(user.id);
    expect(() => store.sessions.create(user.id, { ttlMs: 1000, mfaPassed: false })).toThrow(StoreNotFoundError);
  });
});
