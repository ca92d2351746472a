import { describe, expect, it } from 'vitest';
import { StoreInputError } from '../../src/store/errors.ts';
import type { NewEvent } from '../../src/store/events.ts';
import { openTempStore } from './support.ts';

function event(overrides: Partial<NewEvent> = {}): NewEvent {
  return { tenantId: 'shop', callId: 'call_1', agentUserId: 'usr_a', paymentId: 'pay_1', type: 'capture.progress', payload: { field: 'payment-card-number', entered: 4, expected: 16 }, ...overrides };
}

describe('EventRepository', () => {
  it('numbers events from 1 and gives them back after an id, oldest first', () => {
    const { store, clock } = openTempStore();

    const first = store.events.append(event());
    clock.advance(1500);
    const second = store.events.append(event({ payload: { field: 'payment-card-number', entered: 5, expected: 16 } }));

    expect(first).toEqual({ id: 1, at: '2026-11-21T00:00:00.000Z' });
    expect(second).toEqual({ id: 2, at: '2026-11-21T00:00:01.500Z' });
    expect(store.events.after(0, { limit: 10 })).toEqual([
      { id: 1, at: first.at, tenantId: 'shop', callId: 'call_1', agentUserId: 'usr_a', paymentId: 'pay_1', type: 'capture.progress', payload: { field: 'payment-card-number', entered: 4, expected: 16 } },
      { id: 2, at: second.at, tenantId: 'shop', callId: 'call_1', agentUserId: 'usr_a', paymentId: 'pay_1', type: 'capture.progress', payload: { field: 'payment-card-number', entered: 5, expected: 16 } },
    ]);
    expect(store.events.after(1, { limit: 10 }).map((e) => e.id)).toEqual([2]);
    expect(store.events.after(2, { limit: 10 })).toEqual([]);
  });

  it('filters by tenant and agent, and stops at the limit', () => {
    const { store } = openTempStore();
    store.events.append(event()); // 1
    store.events.append(event({ tenantId: 'other', agentUserId: 'usr_x' })); // 2
    store.events.append(event({ agentUserId: 'usr_b' })); // 3
    store.events.append(event({ agentUserId: null, paymentId: null, type: 'call.started', payload: {} })); // 4
    store.events.append(event()); // 5

    expect(store.events.after(0, { tenantId: 'shop', limit: 100 }).map((e) => e.id)).toEqual([1, 3, 4, 5]);
    expect(store.events.after(0, { tenantId: 'shop', agentUserId: 'usr_a', limit: 100 }).map((e) => e.id)).toEqual([1, 5]);
    expect(store.events.after(0, { limit: 2 }).map((e) => e.id)).toEqual([1, 2]);
    expect(store.events.after(2, { limit: 2 }).map((e) => e.id)).toEqual([3, 4]);
    expect(() => store.events.after(-1, { limit: 1 })).toThrow(StoreInputError);
    expect(() => store.events.after(0, { limit: 0 })).toThrow(StoreInputError);
  });

  it('prunes events older than an age, and never gives a pruned id again', () => {
    const { store, clock } = openTempStore();
    store.events.append(event()); // 1 at 0 s
    clock.advance(10_000);
    store.events.append(event()); // 2 at 10 s
    clock.advance(10_000);
    store.events.append(event()); // 3 at 20 s

    expect(store.events.prune(15_000)).toBe(1); // older than 5 s: event 1
    expect(store.events.after(0, { limit: 10 }).map((e) => e.id)).toEqual([2, 3]);
    expect(store.events.prune(0)).toBe(1); // event 3 is not older than now
    clock.advance(1);
    expect(store.events.prune(0)).toBe(1);
    expect(store.events.after(0, { limit: 10 })).toEqual([]);
    expect(store.events.lastId()).toBe(3);

    const next = store.events.append(event());

    expect(next.id).toBe(4); // a desktop resuming "after 3" sees it
    expect(store.events.after(3, { limit: 10 }).map((e) => e.id)).toEqual([4]);
    expect(() => store.events.prune(-1)).toThrow(StoreInputError);
  });

  it('keeps ids growing across a reopen after everything was pruned', async () => {
    const { store, clock, path } = openTempStore();
    store.events.append(event());
    store.events.append(event());
    clock.advance(1);
    expect(store.events.prune(0)).toBe(2);
    store.close();
    const { Store } = await import('../../src/store/index.ts');
    const { track } = await import('./support.ts');

    const reopened = track(Store.open(path, { clock }));

    expect(reopened.events.lastId()).toBe(2);
    expect(reopened.events.append(event()).id).toBe(3);
  });

  it('refuses a payload with a card-data field, and stores nothing', () => {
    const { store } = openTempStore();

    expect(() => store.events.append(event({ payload: { field: 'payment-card-number', digits: '4111' } }))).toThrow(StoreInputError);
    expect(() => store.events.append(event({ payload: { nested: [{ securityCode: '737' }] } }))).toThrow(StoreInputError);
    expect(store.events.after(0, { limit: 10 })).toEqual([]);
    expect(store.events.lastId()).toBe(0);
  });
});
