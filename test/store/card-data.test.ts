// Non-retention (PCI DSS 3.3.1, 3.5.1; 割賦販売法の非保持化): after a whole payment's worth of
// store traffic — the payment and its progress, the desktop events, the audit entries, the
// webhook and its deliveries — the bytes of the database file and its write-ahead log hold no
// card number (in any spelling we can think of) and no security code. The scanner is shown to
// find each pattern first, so a clean result means something.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { maskedPan } from '../../src/payments/card.ts';
import { CardDigits } from '../../src/payments/digits.ts';
import type { GatewayResult } from '../../src/payments/gateway.ts';
import { SandboxGateway } from '../../src/payments/sandbox.ts';
import { publicResult } from '../../src/payments/session.ts';
import { StoreInputError } from '../../src/store/errors.ts';
import { Store } from '../../src/store/index.ts';
import { openTempStore, tempDir, track } from './support.ts';
import { panSpellings, securityCodeSpellings } from '../support/cardData.ts';

const CARDS = [
  { pan: '4111111111111111', securityCode: '737', expiry: { month: 12, year: 2030 } },
  { pan: '4242424242424242', securityCode: '737', expiry: { month: 3, year: 2031 } },
] as const;

/** Every byte spelling of a card's data we look for, by name. */
function patterns(card: (typeof CARDS)[number]): Map<string, Buffer> {
  const spellings = new Map([...panSpellings(card.pan), ...securityCodeSpellings(card.securityCode)]);
  return new Map([...spellings].map(([name, bytes]) => [`${card.pan.slice(0, 4)}…: ${name}`, bytes]));
}

const ALL_PATTERNS = new Map(CARDS.flatMap((c) => [...patterns(c)]));

/** The names of the patterns found in the database file and its WAL. */
function cardDataIn(path: string): string[] {
  const files = [path, `${path}-wal`].filter((f) => existsSync(f));
  const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
  return [...ALL_PATTERNS].filter(([, pattern]) => bytes.includes(pattern)).map(([name]) => name);
}

async function gatewayResult(gateway: SandboxGateway, clock: FakeClock, card: (typeof CARDS)[number], orderId: string): Promise<GatewayResult> {
  const request = { orderId, amount: 5500, currency: 'JPY', card: { pan: CardDigits.of(card.pan), securityCode: CardDigits.of(card.securityCode), expiry: card.expiry, brand: 'visa' as const } };
  const pending = gateway.sale(request, { idempotencyKey: `idem-${orderId}` });
  clock.advance(5_000); // the sandbox answers after a short, fake-clock delay
  return pending;
}

describe('card data never reaches the store files', () => {
  it('the scanner finds every spelling it looks for, in the file or the WAL', () => {
    const path = join(tempDir(), 'control.db');
    const db = new DatabaseSync(path);
    db.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (v)');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    for (const [name, bytes] of ALL_PATTERNS) {
      if (name.endsWith('64-bit integer')) insert.run(BigInt(`0x${bytes.toString('hex')}`));
      else if (name.endsWith('double')) insert.run(bytes.readDoubleBE());
      else insert.run(new Uint8Array(bytes));
    }

    expect(cardDataIn(path).sort()).toEqual([...ALL_PATTERNS.keys()].sort());
    expect(existsSync(`${path}-wal`)).toBe(true); // the rows are still in the WAL only
    db.close();
  });

  it('after a payment, its events, audit entries and webhooks, in the file and the WAL, open and closed', async () => {
    const clock = new FakeClock();
    const { store, path } = openTempStore(clock);
    const gateway = new SandboxGateway({ clock });
    const agent = await store.users.create({ tenantId: 'shop', username: 'agent1', role: 'agent', password: 'kanji-and-7-digits' });

    for (const [i, card] of CARDS.entries()) {
      const paymentId = `pay_${i}`;
      const callId = `call_${i}`;
      const pan = CardDigits.of(card.pan);
      const base = { tenantId: 'shop', callId, agentUserId: agent.id, paymentId };
      store.payments.create({ id: paymentId, tenantId: 'shop', callId, agentUserId: agent.id, operation: 'sale', amount: { value: 5500, currency: 'JPY' }, method: { kind: 'lump' }, orderId: `ORDER-${i}`, idempotencyKey: `idem-${i}`, fields: ['payment-card-number', 'expiration-date', 'security-code'] });
      store.audit.append({ actorType: 'user', actorId: agent.id, tenantId: 'shop', action: 'payment.start', resource: `payment:${paymentId}`, outcome: 'success', origin: '198.51.100.7', details: { amount: 5500, currency: 'JPY' } });
      store.events.append({ ...base, type: 'payment.started', payload: { type: 'payment.started', callId, paymentId, operation: 'sale', amount: { value: 5500, currency: 'JPY' } } });

      // the caller keys the card number, digit by digit: counts, brand, then the masked form
      for (let n = 1; n <= 16; n++) {
        const masked = n === 16 ? maskedPan(pan, true) : undefined;
        const progress = { type: 'capture.progress', callId, paymentId, field: 'payment-card-number', entered: n, expected: 16, brand: 'visa', ...(masked ? { masked, valid: true } : {}) };
        store.events.append({ ...base, type: 'capture.progress', payload: progress });
        store.payments.update(paymentId, { progress: { 'payment-card-number': { entered: n, expected: 16, ...(masked ? { valid: true } : {}) } }, brand: 'visa', ...(masked ? { last4: masked.slice(-4) } : {}) });
        clock.advance(300);
      }
      for (const [field, expected] of [['expiration-date', 4], ['security-code', 3]] as const) {
        for (let n = 1; n <= expected; n++) store.events.append({ ...base, type: 'capture.progress', payload: { type: 'capture.progress', callId, paymentId, field, entered: n, expected } });
      }
      store.payments.update(paymentId, {
        status: 'authorizing',
        progress: { 'payment-card-number': { entered: 16, expected: 16, valid: true }, 'expiration-date': { entered: 4, expected: 4, valid: true }, 'security-code': { entered: 3, expected: 3, valid: true } },
      });

      const result = publicResult(await gatewayResult(gateway, clock, card, `ORDER-${i}`));
      pan.wipe();
      expect(result.status).toBe('approved');
      store.transaction(() => {
        store.payments.update(paymentId, { status: 'approved', result });
        store.events.append({ ...base, type: 'payment.completed', payload: { type: 'payment.completed', callId, paymentId, result } });
        const { id } = store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: { paymentId, callId, result, progress: { 'security-code': { entered: 3, expected: 3 } } } });
        store.webhooks.recordAttempt(id, { atMs: clock.wallMs(), statusCode: 503, durationMs: 40, error: 'HTTP 503', outcome: 'retry', nextAttemptAtMs: clock.wallMs() + 1000 });
        store.webhooks.recordAttempt(id, { atMs: clock.wallMs() + 1000, statusCode: 200, durationMs: 35, error: null, outcome: 'delivered', nextAttemptAtMs: null });
        store.audit.append({ actorType: 'system', actorId: null, tenantId: 'shop', action: 'payment.complete', resource: `payment:${paymentId}`, outcome: 'success', origin: 'system', details: { status: result.status, last4: result.last4 ?? null, brand: result.brand ?? null } });
      });
    }
    expect(store.payments.get('pay_0')).toMatchObject({ status: 'approved', last4: '1111', brand: 'visa' });
    expect(store.audit.verify()).toMatchObject({ ok: true, entries: 4 });
    expect(existsSync(`${path}-wal`)).toBe(true);

    expect(cardDataIn(path)).toEqual([]); // while open: most of it still in the WAL

    store.close();
    await gateway.close();
    expect(cardDataIn(path)).toEqual([]); // closed: checkpointed into the file

    const reopened = track(Store.open(path, { clock }));
    expect(reopened.payments.list().map((p) => [p.id, p.brand, p.last4, p.result?.last4])).toEqual([
      ['pay_1', 'visa', '4242', '4242'],
      ['pay_0', 'visa', '1111', '1111'],
    ]);
  });

  describe('a payload with a card-data field is refused, and nothing is written', () => {
    const forbidden = [
      { name: 'cardNumber', value: { cardNumber: '4111111111111111' } },
      { name: 'pan', value: { pan: '4111111111111111' } },
      { name: 'PAN in a nested array', value: { cards: [{ PAN: '4242424242424242' }] } },
      { name: 'card_number', value: { card: { card_number: '4111 1111 1111 1111' } } },
      { name: 'PaymentCardNumber', value: { PaymentCardNumber: 'xxxxxxxxxxxx1111' } },
      { name: 'cvv', value: { cvv: '737' } },
      { name: 'CVV2', value: { CVV2: 737 } },
      { name: 'cvc', value: { cvc: '737' } },
      { name: 'securityCode', value: { securityCode: '737' } },
      { name: 'security-code as text', value: { 'security-code': '737' } },
      { name: 'security_code with a count too big to be one', value: { security_code: { entered: 737, expected: 3 } } },
      { name: 'expiry', value: { expiry: '12/30' } },
      { name: 'password', value: { password: 'hunter2hunter2' } },
    ];

    it.each(forbidden)('$name', ({ value }) => {
      const { store, path } = openTempStore();
      store.payments.create({ id: 'pay_1', tenantId: 'shop', callId: 'c', agentUserId: null, operation: 'sale', idempotencyKey: 'k', fields: [] });
      const before = { events: store.events.lastId(), webhooks: store.webhooks.counts(), audit: store.audit.verify(), payment: store.payments.get('pay_1') };

      expect(() => store.events.append({ tenantId: 'shop', callId: 'c', agentUserId: null, paymentId: 'pay_1', type: 'capture.progress', payload: value })).toThrow(StoreInputError);
      expect(() => store.webhooks.enqueue({ tenantId: 'shop', type: 'payment.completed', payload: { result: value } })).toThrow(StoreInputError);
      expect(() => store.audit.append({ actorType: 'system', actorId: null, tenantId: 'shop', action: 'x', resource: null, outcome: 'success', origin: 'test', details: value })).toThrow(StoreInputError);
      expect(() => store.payments.update('pay_1', { result: value as never })).toThrow(StoreInputError);
      expect(() => store.payments.update('pay_1', { progress: value })).toThrow(StoreInputError);

      expect({ events: store.events.lastId(), webhooks: store.webhooks.counts(), audit: store.audit.verify(), payment: store.payments.get('pay_1') }).toEqual(before);
      store.close();
      expect(cardDataIn(path)).toEqual([]);
    });

    it('the refusal names the field, never its value', () => {
      const { store } = openTempStore();
      try {
        store.events.append({ tenantId: 'shop', callId: 'c', agentUserId: null, paymentId: null, type: 't', payload: { card: { pan: '4111111111111111' } } });
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(StoreInputError);
        expect((err as StoreInputError).code).toBe('HP_ERR_STORE_INPUT');
        expect((err as Error).message).toBe('payload.card.pan: card data and credentials are never stored');
      }
    });
  });
});
