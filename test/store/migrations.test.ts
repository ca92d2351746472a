import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import type { DeskStore } from '../../src/desktop/desk.ts';
import type { AuthStore } from '../../src/desktop/app.ts';
import { StoreInputError, StoreMissingError, StoreSchemaError } from '../../src/store/errors.ts';
import { Store } from '../../src/store/index.ts';
import { MIGRATIONS, type Migration, migrate, schemaVersion } from '../../src/store/migrations.ts';
import { openTempStore, tempDir, track } from './support.ts';

const clock = new FakeClock();

function tables(db: DatabaseSync): string[] {
  return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => String(r['name']));
}

/** How many migrations this hushpay has. */
const N = MIGRATIONS.length;

describe('migrations', () => {
  it('bring a new file to the latest version, recording each, and do nothing the second time', () => {
    const db = new DatabaseSync(':memory:');

    expect(migrate(db, MIGRATIONS, () => clock.wallMs())).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(migrate(db, MIGRATIONS, () => clock.wallMs())).toEqual([]);
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(tables(db)).toEqual(['api_keys', 'audit_log', 'events', 'payments', 'schema_migrations', 'sessions', 'users', 'webhook_deliveries', 'webhook_outbox']);
    expect(db.prepare('SELECT version, applied_at FROM schema_migrations WHERE version = 1').get()).toEqual({ version: 1, applied_at: '2026-11-21T00:00:00.000Z' });
    db.close();
  });

  it('have no column that could hold a card number, an expiry or a security code', () => {
    const db = new DatabaseSync(':memory:');
    migrate(db, MIGRATIONS, () => clock.wallMs());

    const columns = tables(db).flatMap((t) => db.prepare(`PRAGMA table_info(${t})`).all().map((c) => String(c['name'])));

    expect(columns.length).toBeGreaterThan(50);
    for (const c of columns) expect(c).not.toMatch(/pan|card_?num|cvv|cvc|security|expiry|expiration|exp_date|track|pin\b/i);
    db.close();
  });

  it('apply only what is newer than the file', () => {
    const db = new DatabaseSync(':memory:');
    migrate(db, MIGRATIONS.slice(0, 2), () => clock.wallMs());

    expect(schemaVersion(db)).toBe(2);
    expect(migrate(db, MIGRATIONS, () => clock.wallMs())).toEqual(Array.from({ length: N - 2 }, (_, i) => i + 3));
    db.close();
  });

  it('refuse a file of a newer schema, and write nothing to it', () => {
    const db = new DatabaseSync(':memory:');
    const future: Migration = { version: N + 1, name: 'from the future', sql: 'CREATE TABLE future (x INTEGER) STRICT' };
    migrate(db, [...MIGRATIONS, future], () => clock.wallMs());

    expect(() => migrate(db, MIGRATIONS, () => clock.wallMs())).toThrow(StoreSchemaError);
    expect(() => migrate(db, MIGRATIONS, () => clock.wallMs())).toThrow(`the database is at schema version ${N + 1}, newer than this hushpay knows (${N})`);
    expect(schemaVersion(db)).toBe(N + 1);
    db.close();
  });

  it('roll a failed migration back whole: no table, no version row', () => {
    const db = new DatabaseSync(':memory:');
    const broken: Migration = { version: N + 1, name: 'half done', sql: 'CREATE TABLE half (x INTEGER) STRICT; CREATE TABLE payments (x INTEGER)' };

    expect(() => migrate(db, [...MIGRATIONS, broken], () => clock.wallMs())).toThrow(new RegExp(`migration ${N + 1} \\('half done'\\) failed and was rolled back`));
    expect(schemaVersion(db)).toBe(N);
    expect(tables(db)).not.toContain('half');
    expect(db.isTransaction).toBe(false);
    db.close();
  });

  it('refuse a list numbered out of order', () => {
    const db = new DatabaseSync(':memory:');
    expect(() => migrate(db, [MIGRATIONS[1]!], () => clock.wallMs())).toThrow(StoreSchemaError);
    db.close();
  });
});

describe('Store.open', () => {
  it('makes the directory 0700 and the file 0600, in WAL mode with foreign keys on', () => {
    const dir = tempDir();
    const path = join(dir, 'a', 'b', Store.DEFAULT_FILE);

    const store = track(Store.open(path, { clock }));
    store.audit.append({ actorType: 'system', actorId: null, tenantId: null, action: 'store.open', resource: null, outcome: 'success', origin: 'test' });

    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}-wal`).mode & 0o777).toBe(0o600);
    expect(store.path).toBe(path);
    const raw = new DatabaseSync(path, { readOnly: true });
    expect(raw.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    raw.close();
    expect(Store.DEFAULT_FILE).toBe('hushpay.db');
  });

  it('tightens an existing file to 0600', () => {
    const dir = tempDir();
    const path = join(dir, Store.DEFAULT_FILE);
    writeFileSync(path, '', { mode: 0o644 });

    track(Store.open(path, { clock }));

    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('keeps what was written across a close and a reopen', async () => {
    const { store, path } = openTempStore();
    const key = store.apiKeys.create({ tenantId: 'shop', name: 'crm' });
    store.close();

    const again = track(Store.open(path, { clock }));

    expect(again.apiKeys.authenticate(key.key)).toEqual(key.record);
  });

  it('enforces foreign keys (a session of no user)', () => {
    const { path } = openTempStore();
    const raw = new DatabaseSync(path);
    raw.exec('PRAGMA foreign_keys = ON');
    expect(() => raw.prepare("INSERT INTO sessions VALUES (x'00', 'usr_nope', 'c', 0, 'now', 0)").run()).toThrow(/FOREIGN KEY/);
    raw.close();
  });

  it('read-only: refuses a missing file, creating nothing', () => {
    const dir = tempDir();
    const path = join(dir, 'data', Store.DEFAULT_FILE);

    expect(() => Store.open(path, { clock, readOnly: true })).toThrow(StoreMissingError);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('read-only: refuses an older schema instead of migrating it', () => {
    const dir = tempDir();
    const path = join(dir, Store.DEFAULT_FILE);
    const db = new DatabaseSync(path);
    migrate(db, MIGRATIONS.slice(0, 3), () => clock.wallMs());
    db.close();

    expect(() => Store.open(path, { clock, readOnly: true })).toThrow(`schema version 3, older than this hushpay's (${N})`);
    const check = new DatabaseSync(path);
    expect(schemaVersion(check)).toBe(3);
    check.close();
    expect(track(Store.open(path, { clock })).readOnly).toBe(false); // a writable open migrates it
  });

  it('refuses a newer schema, read-only or not', () => {
    const dir = tempDir();
    const path = join(dir, Store.DEFAULT_FILE);
    const db = new DatabaseSync(path);
    migrate(db, [...MIGRATIONS, { version: N + 1, name: 'future', sql: 'CREATE TABLE future (x INTEGER)' }], () => clock.wallMs());
    db.close();

    expect(() => Store.open(path, { clock })).toThrow(StoreSchemaError);
    expect(() => Store.open(path, { clock, readOnly: true })).toThrow(StoreSchemaError);
  });

  it('refuses a file that is not a SQLite database', () => {
    const dir = tempDir();
    const path = join(dir, Store.DEFAULT_FILE);
    writeFileSync(path, 'this is not a database, it is a text file that is long enough '.repeat(20));

    expect(() => Store.open(path, { clock })).toThrow(StoreSchemaError);
    expect(() => Store.open(path, { clock, readOnly: true })).toThrow(StoreSchemaError);
  });

  it('closes exactly once; a closed store is not used', () => {
    const { store } = openTempStore();

    store.close();
    store.close();

    expect(store.closed).toBe(true);
    expect(() => store.apiKeys.list('shop')).toThrow(/not open/);
  });

  it('runs several repository calls in one transaction, all or nothing', () => {
    const { store } = openTempStore();
    const newPayment = { id: 'pay_1', tenantId: 'shop', callId: 'c', agentUserId: null, operation: 'sale' as const, idempotencyKey: 'k', fields: [] };

    expect(() =>
      store.transaction(() => {
        store.payments.create(newPayment);
        store.audit.append({ actorType: 'system', actorId: null, tenantId: 'shop', action: 'payment.start', resource: 'payment:pay_1', outcome: 'success', origin: 'test' });
        store.events.append({ tenantId: 'shop', callId: 'c', agentUserId: null, paymentId: 'pay_1', type: 'payment.started', payload: { cvv: '737' } });
      }),
    ).toThrow(StoreInputError);
    expect(store.payments.get('pay_1')).toBeUndefined();
    expect(store.audit.verify()).toMatchObject({ ok: true, entries: 0 });

    const result = store.transaction(() => {
      store.payments.create(newPayment);
      return store.audit.append({ actorType: 'system', actorId: null, tenantId: 'shop', action: 'payment.start', resource: 'payment:pay_1', outcome: 'success', origin: 'test' }).seq;
    });
    expect(result).toBe(1);
    expect(store.payments.get('pay_1')).toBeDefined();
  });

  it('refuses an asynchronous function as a transaction, rolling back what it began', () => {
    const { store } = openTempStore();

    expect(() =>
      store.transaction(() => {
        store.apiKeys.create({ tenantId: 'shop', name: 'crm' });
        return Promise.resolve();
      }),
    ).toThrow(/synchronous/);
    expect(store.apiKeys.list('shop')).toEqual([]);
  });

  it('fits the seams the desk and the HTTP app were written against', () => {
    expectTypeOf<Store>().toExtend<DeskStore>();
    expectTypeOf<Store>().toExtend<AuthStore>();
  });

  it('creates the directory only when missing, leaving an existing one as it is', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'shared'), { mode: 0o755 });
    track(Store.open(join(dir, 'shared', Store.DEFAULT_FILE), { clock }));
    expect(statSync(join(dir, 'shared')).mode & 0o777).toBe(0o755);
  });
});
