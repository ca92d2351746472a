import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StoreInputError, StoreNotFoundError } from '../../src/store/errors.ts';
import { openTempStore } from './support.ts';

describe('ApiKeyRepository', () => {
  it('creates a key shown once, and authenticates exactly that key', () => {
    const { store } = openTempStore();

    const { key, record } = store.apiKeys.create({ tenantId: 'shop', name: 'order system' });

    expect(key).toMatch(/^hpk_[A-Za-z0-9_-]{43}$/);
    expect(record).toMatchObject({ tenantId: 'shop', name: 'order system', prefix: key.slice(0, 8), revokedAt: null });
    expect(store.apiKeys.authenticate(key)).toEqual(record);
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    expect(store.apiKeys.authenticate(`${key.slice(0, -1)}${last}`)).toBeUndefined();
    expect(store.apiKeys.authenticate(key.slice(0, -1))).toBeUndefined();
    expect(store.apiKeys.authenticate('')).toBeUndefined();
  });

  it('keeps the SHA-256 of the key, never the key', () => {
    const { store, path } = openTempStore();
    const { key } = store.apiKeys.create({ tenantId: 'shop', name: 'crm' });
    store.close();

    const bytes = Buffer.concat([readFileSync(path), readFileSync(`${path}-wal`, { flag: 'a+' })]);
    expect(bytes.includes(key)).toBe(false);
    expect(bytes.includes(key.slice(4))).toBe(false);
    expect(bytes.includes(createHash('sha256').update(key).digest())).toBe(true);
  });

  it('refuses a revoked key; revoking twice keeps the first time', () => {
    const { store, clock } = openTempStore();
    const { key, record } = store.apiKeys.create({ tenantId: 'shop', name: 'crm' });
    const other = store.apiKeys.create({ tenantId: 'shop', name: 'order system' });

    clock.advance(5_000);
    const revoked = store.apiKeys.revoke(record.id);
    clock.advance(5_000);

    expect(revoked.revokedAt).toBe('2026-11-21T00:00:05.000Z');
    expect(store.apiKeys.revoke(record.id).revokedAt).toBe('2026-11-21T00:00:05.000Z');
    expect(store.apiKeys.authenticate(key)).toBeUndefined();
    expect(store.apiKeys.authenticate(other.key)).toEqual(other.record);
    expect(() => store.apiKeys.revoke('key_nope')).toThrow(StoreNotFoundError);
  });

  it("lists a tenant's keys, revoked ones included, oldest first", () => {
    const { store, clock } = openTempStore();
    const a = store.apiKeys.create({ tenantId: 'shop', name: 'a' });
    clock.advance(1);
    const b = store.apiKeys.create({ tenantId: 'shop', name: 'b' });
    store.apiKeys.create({ tenantId: 'other', name: 'c' });
    store.apiKeys.revoke(a.record.id);

    expect(store.apiKeys.list('shop').map((k) => [k.name, k.revokedAt !== null])).toEqual([
      ['a', true],
      ['b', false],
    ]);
    expect(store.apiKeys.list('shop')[1]).toEqual(b.record);
  });

  it('refuses an empty tenant or name', () => {
    const { store } = openTempStore();

    expect(() => store.apiKeys.create({ tenantId: '', name: 'x' })).toThrow(StoreInputError);
    expect(() => store.apiKeys.create({ tenantId: 'shop', name: ' ' })).toThrow(StoreInputError);
  });
});
