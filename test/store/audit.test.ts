import { createHash } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { StoreInputError } from '../../src/store/errors.ts';
import { type NewAuditEntry, Store } from '../../src/store/index.ts';
import { openTempStore, track } from './support.ts';

function entry(overrides: Partial<NewAuditEntry> = {}): NewAuditEntry {
  return { actorType: 'user', actorId: 'usr_a', tenantId: 'shop', action: 'payment.start', resource: 'payment:pay_1', outcome: 'success', origin: '203.0.113.7', ...overrides };
}

/** A store with `n` entries, a minute apart, and a raw connection with the append-only triggers dropped. */
function tamperable(n: number): { store: Store; raw: DatabaseSync } {
  const { store, clock, path } = openTempStore();
  for (let i = 1; i <= n; i++) {
    store.audit.append(entry({ resource: `payment:pay_${i}`, details: { i } }));
    clock.advance(60_000);
  }
  const raw = new DatabaseSync(path);
  raw.exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete');
  return { store, raw };
}

describe('AuditLog', () => {
  it('appends the PCI DSS 10.2.2 fields, numbered from 1 and chained from 32 zero bytes', () => {
    const { store } = openTempStore();

    const first = store.audit.append(entry({ details: { amount: 5500, currency: 'JPY' } }));
    const second = store.audit.append(entry({ actorType: 'system', actorId: null, tenantId: null, action: 'audit.verify', resource: null, outcome: 'failure', origin: 'cli' }));

    expect(first).toMatchObject({ seq: 1, at: '2026-11-21T00:00:00.000Z', actorType: 'user', actorId: 'usr_a', tenantId: 'shop', action: 'payment.start', resource: 'payment:pay_1', outcome: 'success', origin: '203.0.113.7', details: { amount: 5500, currency: 'JPY' } });
    expect(first.prevHash).toBe('0'.repeat(64));
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toMatchObject({ seq: 2, prevHash: first.hash, actorId: null, tenantId: null, resource: null, outcome: 'failure', details: {} });
    expect(store.audit.verify()).toEqual({ ok: true, entries: 2, head: second.hash });
  });

  it('hashes SHA-256(prev_hash ‖ RFC 8785 JSON of the entry), so anyone can recompute it', () => {
    const { store } = openTempStore();

    const e = store.audit.append(entry({ details: { z: 1, a: [true, null, 'テスト'] } }));

    const json =
      '{"action":"payment.start","actorId":"usr_a","actorType":"user","at":"2026-11-21T00:00:00.000Z",' +
      '"details":{"a":[true,null,"テスト"],"z":1},"origin":"203.0.113.7","outcome":"success","resource":"payment:pay_1","seq":1,"tenantId":"shop"}';
    const expected = createHash('sha256').update(Buffer.alloc(32)).update(json, 'utf8').digest('hex');
    expect(e.hash).toBe(expected);
  });

  it('refuses card data and credentials in details, and bad fields, writing nothing', () => {
    const { store } = openTempStore();

    expect(() => store.audit.append(entry({ details: { cardNumber: '4111111111111111' } }))).toThrow(StoreInputError);
    expect(() => store.audit.append(entry({ details: { user: { password: 'hunter2hunter2' } } }))).toThrow(StoreInputError);
    expect(() => store.audit.append(entry({ action: '' }))).toThrow(StoreInputError);
    expect(() => store.audit.append(entry({ origin: 'a\nb' }))).toThrow(StoreInputError);
    expect(() => store.audit.append(entry({ actorType: 'root' as 'user' }))).toThrow(StoreInputError);
    expect(() => store.audit.append(entry({ outcome: 'maybe' as 'success' }))).toThrow(StoreInputError);
    expect(store.audit.verify()).toEqual({ ok: true, entries: 0, head: null });
  });

  it('cannot be changed through SQL while its triggers stand', () => {
    const { store, path } = openTempStore();
    store.audit.append(entry());
    const raw = new DatabaseSync(path);

    expect(() => raw.exec("UPDATE audit_log SET outcome = 'failure'")).toThrow(/append-only/);
    expect(() => raw.exec('DELETE FROM audit_log')).toThrow(/append-only/);
    raw.close();
    expect(store.audit.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('lists newest first, by tenant and time, up to a limit', () => {
    const { store, clock } = openTempStore();
    for (let i = 0; i < 5; i++) {
      store.audit.append(entry({ tenantId: i % 2 === 0 ? 'shop' : 'other', resource: `r:${i}` }));
      clock.advance(3_600_000);
    }

    expect(store.audit.list().map((e) => e.seq)).toEqual([5, 4, 3, 2, 1]);
    expect(store.audit.list({ tenantId: 'shop' }).map((e) => e.seq)).toEqual([5, 3, 1]);
    expect(store.audit.list({ from: '2026-11-21T01:00:00Z', to: '2026-11-21T03:00:00Z' }).map((e) => e.seq)).toEqual([3, 2]);
    expect(store.audit.list({ limit: 2 }).map((e) => e.seq)).toEqual([5, 4]);
    expect(() => store.audit.list({ limit: 0 })).toThrow(StoreInputError);
    expect(() => store.audit.list({ from: 'now' })).toThrow(StoreInputError);
  });

  it('keeps one unbroken chain while three connections append at once (BEGIN IMMEDIATE)', async () => {
    const { store, path } = openTempStore();
    const run = (name: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL('./auditWorker.ts', import.meta.url), { workerData: { path, count: 150, name } });
        worker.once('message', resolve);
        worker.once('error', reject);
      });

    await Promise.all([run('a'), run('b'), run('c')]);

    expect(store.audit.verify()).toMatchObject({ ok: true, entries: 450 });
    const actors = store.audit.list({ limit: 450 }).map((e) => e.actorId);
    expect(new Set(actors)).toEqual(new Set(['a', 'b', 'c']));
  });
});

describe('AuditLog.verify finds tampering even with the triggers dropped', () => {
  it('an edited field: names the entry', () => {
    const { store, raw } = tamperable(5);

    raw.exec("UPDATE audit_log SET outcome = 'failure' WHERE seq = 3");

    expect(store.audit.verify()).toEqual({ ok: false, entries: 3, firstBadSeq: 3, problem: 'the hash does not match the entry: it was changed after it was written', head: expect.any(String) });
    raw.close();
  });

  it('edited details, or details that are no longer JSON', () => {
    const { store, raw } = tamperable(4);

    raw.exec(`UPDATE audit_log SET details = '{"i":20}' WHERE seq = 2`);
    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 2 });
    raw.exec(`UPDATE audit_log SET details = '{"i":2}' WHERE seq = 2`);
    expect(store.audit.verify()).toMatchObject({ ok: true, entries: 4 });
    raw.exec(`UPDATE audit_log SET details = 'nope' WHERE seq = 4`);
    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 4, problem: expect.stringContaining('cannot be read') });
    raw.close();
  });

  it('a deleted entry: names the missing seq', () => {
    const { store, raw } = tamperable(5);

    raw.exec('DELETE FROM audit_log WHERE seq = 2');

    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'entry 2 is missing (the next entry found is 3)' });
    raw.exec('DELETE FROM audit_log WHERE seq IN (1, 3)');
    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 1, problem: 'entries 1 to 3 are missing (the next entry found is 4)' });
    raw.close();
  });

  it('a deleted entry with the rest renumbered: the link is broken', () => {
    const { store, raw } = tamperable(4);

    raw.exec('DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2');

    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 2, problem: expect.stringContaining('prev_hash does not match the hash of entry 1') });
    raw.close();
  });

  it('two entries swapped: the link is broken at the first', () => {
    const { store, raw } = tamperable(5);

    raw.exec('UPDATE audit_log SET seq = 100 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 100');

    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 3, problem: expect.stringContaining('prev_hash does not match') });
    raw.close();
  });

  it('an edited entry with its own hash recomputed: the next entry no longer links to it', () => {
    const { store, raw } = tamperable(3);
    const row = store.audit.list({ limit: 3 }).find((e) => e.seq === 2)!;
    const forged = { ...row, outcome: 'failure' as const };
    const json = JSON.stringify(Object.fromEntries(Object.entries({ seq: 2, at: forged.at, tenantId: forged.tenantId, actorType: forged.actorType, actorId: forged.actorId, action: forged.action, outcome: forged.outcome, origin: forged.origin, resource: forged.resource, details: forged.details }).sort(([a], [b]) => (a < b ? -1 : 1))));
    const hash = createHash('sha256').update(Buffer.from(row.prevHash, 'hex')).update(json).digest();

    raw.prepare("UPDATE audit_log SET outcome = 'failure', hash = ? WHERE seq = 2").run(hash);

    expect(store.audit.verify()).toMatchObject({ ok: false, entries: 3, firstBadSeq: 3, problem: 'prev_hash does not match the hash of entry 2 (entries removed, reordered or re-linked)' });
    raw.close();
  });

  it('a first entry re-linked: prev_hash must be zeros', () => {
    const { store, raw } = tamperable(2);

    raw.prepare('UPDATE audit_log SET prev_hash = ? WHERE seq = 1').run(Buffer.alloc(32, 1));

    expect(store.audit.verify()).toMatchObject({ ok: false, firstBadSeq: 1, problem: 'prev_hash of the first entry is not 32 zero bytes' });
    raw.close();
  });

  it('verifies read-only, from a second Store on the same file', () => {
    const { store, clock, path } = openTempStore();
    store.audit.append(entry());
    store.audit.append(entry());

    const reader = track(Store.open(path, { clock, readOnly: true }));

    expect(reader.audit.verify()).toMatchObject({ ok: true, entries: 2 });
    expect(() => reader.audit.append(entry())).toThrow(/readonly/);
  });
});
