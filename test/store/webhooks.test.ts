import { describe, expect, expectTypeOf, it } from 'vitest';
import type { WebhookOutbox as DispatcherOutbox } from '../../src/webhooks/dispatcher.ts';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from '../../src/store/errors.ts';
import type { AttemptRecord, WebhookOutbox } from '../../src/store/webhooks.ts';
import { openTempStore } from './support.ts';

const T0 = Date.UTC(2026, 10, 21);

function attempt(overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return { atMs: T0, statusCode: 200, durationMs: 42, error: null, outcome: 'delivered', nextAttemptAtMs: null, ...overrides };
}

describe('WebhookOutboxRepository', () => {
  it('is the outbox the dispatcher depends on', () => {
    const { store } = openTempStore();
    expectTypeOf(store.webhooks).toExtend<WebhookOutbox>();
    expectTypeOf(store.webhooks).toExtend<DispatcherOutbox>();
    expectTypeOf<WebhookOutbox>().toEqualTypeOf<DispatcherOutbox>();
  });

  it('enqueues the exact body to POST, in the Standard Webhooks shape, due at once', () => {
    const { store } = openTempStore();

    const { id, body } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: { paymentId: 'pay_1', result: { status: 'approved', last4: '1111' }, skipped: undefined } });

    expect(id).toMatch(/^msg_[A-Za-z0-9_-]{22}$/);
    expect(body).toBe('{"type":"payment.completed","timestamp":"2026-11-21T00:00:00.000Z","data":{"paymentId":"pay_1","result":{"status":"approved","last4":"1111"}}}');
    expect(store.webhooks.get(id)).toEqual({ id, tenantId: 'shop', type: 'payment.completed', body, status: 'pending', attempts: 0, nextAttemptAtMs: T0, createdAt: '2026-11-21T00:00:00.000Z', settledAt: null, url: null });
    expect(store.webhooks.due(T0, 10)).toEqual([{ id, tenantId: 'shop', type: 'payment.completed', body, attempts: 0, createdAt: '2026-11-21T00:00:00.000Z', url: null }]);
    expect(store.webhooks.due(T0 - 1, 10)).toEqual([]);
  });

  it('refuses a payload with a card-data field, a bad type, or no tenant', () => {
    const { store } = openTempStore();

    expect(() => store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: { card: { pan: '4111111111111111' } } })).toThrow(StoreInputError);
    expect(() => store.webhooks.enqueue({ tenantId: 'shop', type: 'Payment Completed', payload: {} })).toThrow(StoreInputError);
    expect(() => store.webhooks.enqueue({ tenantId: '', type: 'payment.completed', payload: {} })).toThrow(StoreInputError);
    expect(store.webhooks.counts()).toEqual({ pending: 0, delivered: 0, failed: 0 });
  });

  it('gives due messages oldest first, up to the limit', () => {
    const { store, clock } = openTempStore();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(store.webhooks.enqueue({ tenantId: 'shop', type: 'capture.progress', payload: { i } }).id);
      if (i !== 1) clock.advance(10); // messages 1 and 2 share a millisecond: insertion order decides
    }

    expect(store.webhooks.due(clock.wallMs(), 10).map((m) => m.id)).toEqual(ids);
    expect(store.webhooks.due(clock.wallMs(), 2).map((m) => m.id)).toEqual(ids.slice(0, 2));
    expect(store.webhooks.due(T0 + 10, 10).map((m) => m.id)).toEqual(ids.slice(0, 3));
    expect(() => store.webhooks.due(T0, 0)).toThrow(StoreInputError);
  });

  it('records a retry: pending again, due at the next time, attempts counted', () => {
    const { store } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {} });

    store.webhooks.recordAttempt(id, attempt({ statusCode: 500, error: 'HTTP 500', outcome: 'retry', nextAttemptAtMs: T0 + 30_000, durationMs: 12.6 }));

    expect(store.webhooks.get(id)).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAtMs: T0 + 30_000, settledAt: null });
    expect(store.webhooks.due(T0 + 29_999, 10)).toEqual([]);
    expect(store.webhooks.due(T0 + 30_000, 10).map((m) => [m.id, m.attempts])).toEqual([[id, 1]]);
    expect(store.webhooks.deliveries({ outboxId: id })).toEqual([
      { outboxId: id, tenantId: 'shop', type: 'payment.completed', attempt: 1, at: '2026-11-21T00:00:00.000Z', statusCode: 500, durationMs: 13, error: 'HTTP 500', outcome: 'retry' },
    ]);
  });

  it('settles a message delivered after retries; it is never due again', () => {
    const { store, clock } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {} });

    store.webhooks.recordAttempt(id, attempt({ statusCode: null, error: 'ECONNREFUSED', outcome: 'retry', nextAttemptAtMs: T0 + 5_000, durationMs: 3 }));
    clock.advance(5_000);
    store.webhooks.recordAttempt(id, attempt({ atMs: T0 + 5_000, statusCode: null, error: 'timeout', outcome: 'retry', nextAttemptAtMs: T0 + 30_000, durationMs: 10_000 }));
    clock.advance(25_000);
    store.webhooks.recordAttempt(id, attempt({ atMs: T0 + 30_000, statusCode: 204 }));

    expect(store.webhooks.get(id)).toMatchObject({ status: 'delivered', attempts: 3, nextAttemptAtMs: null, settledAt: '2026-11-21T00:00:30.000Z' });
    expect(store.webhooks.due(T0 + 10 ** 9, 10)).toEqual([]);
    expect(store.webhooks.deliveries({ outboxId: id }).map((d) => [d.attempt, d.statusCode, d.error, d.outcome])).toEqual([
      [3, 204, null, 'delivered'],
      [2, null, 'timeout', 'retry'],
      [1, null, 'ECONNREFUSED', 'retry'],
    ]);
    expect(store.webhooks.counts()).toEqual({ pending: 0, delivered: 1, failed: 0 });
  });

  it('settles a message failed for good, and refuses another attempt on a settled message', () => {
    const { store } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.failed', payload: {} });

    store.webhooks.recordAttempt(id, attempt({ statusCode: 410, error: 'HTTP 410', outcome: 'failed', nextAttemptAtMs: T0 + 1 }));

    expect(store.webhooks.get(id)).toMatchObject({ status: 'failed', attempts: 1, nextAttemptAtMs: null, settledAt: '2026-11-21T00:00:00.000Z' });
    expect(store.webhooks.deliveries({ outboxId: id })[0]!.outcome).toBe('failed');
    expect(() => store.webhooks.recordAttempt(id, attempt())).toThrow(StoreConflictError);
    expect(store.webhooks.get(id)!.attempts).toBe(1);
    expect(store.webhooks.deliveries({ outboxId: id })).toHaveLength(1);
  });

  it('refuses a malformed attempt, or one for an unknown message, changing nothing', () => {
    const { store } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {} });

    expect(() => store.webhooks.recordAttempt(id, attempt({ outcome: 'retry', nextAttemptAtMs: null }))).toThrow(StoreInputError);
    expect(() => store.webhooks.recordAttempt(id, attempt({ statusCode: 42 }))).toThrow(StoreInputError);
    expect(() => store.webhooks.recordAttempt(id, attempt({ durationMs: Number.NaN }))).toThrow(StoreInputError);
    expect(() => store.webhooks.recordAttempt(id, attempt({ outcome: 'maybe' as 'retry' }))).toThrow(StoreInputError);
    expect(() => store.webhooks.recordAttempt('msg_nope', attempt())).toThrow(StoreNotFoundError);
    expect(store.webhooks.get(id)).toMatchObject({ status: 'pending', attempts: 0 });
    expect(store.webhooks.deliveries()).toEqual([]);
  });

  it('cuts a long error to a short reason', () => {
    const { store } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {} });

    store.webhooks.recordAttempt(id, attempt({ statusCode: 500, error: `HTTP 500 ${'x'.repeat(1000)}`, outcome: 'retry', nextAttemptAtMs: T0 + 1 }));

    expect(store.webhooks.deliveries()[0]!.error).toHaveLength(200);
  });

  it('lists deliveries newest first, by tenant, up to a limit; counts by tenant', () => {
    const { store, clock } = openTempStore();
    const shop = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {} }).id;
    const other = store.webhooks.enqueue({ tenantId: 'other', type: 'payment.failed', payload: {} }).id;
    store.webhooks.enqueue({ tenantId: 'other', type: 'payment.failed', payload: {} });
    store.webhooks.recordAttempt(shop, attempt({ atMs: T0 + 1_000, outcome: 'retry', statusCode: 503, nextAttemptAtMs: T0 + 2_000 }));
    store.webhooks.recordAttempt(other, attempt({ atMs: T0 + 1_500 }));
    clock.advance(2_000);
    store.webhooks.recordAttempt(shop, attempt({ atMs: T0 + 2_000, outcome: 'failed', statusCode: 503 }));

    expect(store.webhooks.deliveries().map((d) => [d.outboxId, d.attempt, d.tenantId, d.type])).toEqual([
      [shop, 2, 'shop', 'payment.completed'],
      [other, 1, 'other', 'payment.failed'],
      [shop, 1, 'shop', 'payment.completed'],
    ]);
    expect(store.webhooks.deliveries({ tenantId: 'other' }).map((d) => d.outboxId)).toEqual([other]);
    expect(store.webhooks.deliveries({ limit: 1 }).map((d) => d.attempt)).toEqual([2]);
    expect(store.webhooks.counts()).toEqual({ pending: 1, delivered: 1, failed: 1 });
    expect(store.webhooks.counts('other')).toEqual({ pending: 1, delivered: 1, failed: 0 });
    expect(() => store.webhooks.deliveries({ limit: 10_001 })).toThrow(StoreInputError);
  });
});

describe('status callbacks', () => {
  it('a message addressed to one URL keeps it; anything but an http(s) URL is refused', () => {
    const { store } = openTempStore();
    const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'capture.progress', payload: { field: 'payment-card-number', entered: 3 }, url: 'https://crm.example/hooks/pay_1?x=1' });
    expect(store.webhooks.get(id)?.url).toBe('https://crm.example/hooks/pay_1?x=1');
    expect(store.webhooks.due(Number.MAX_SAFE_INTEGER, 10).map((m) => m.url)).toEqual(['https://crm.example/hooks/pay_1?x=1']);
    for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'not a url', `https://x.example/${'a'.repeat(2100)}`]) {
      expect(() => store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: {}, url }), url).toThrow(StoreInputError);
    }
  });
});
