/**
 * A call's payments end to end without SIP: a scripted digit stream (the shape the media
 * engine's DigitStream delivers), the flows, the sandbox gateway on a fake clock. Each way a
 * payment can end reaches its reason; every CardDigits value the capture made is wiped after;
 * and no event, prompt, log line or error holds a card digit.
 */

import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { createLogger } from '../../src/log.ts';
import { CardDigits } from '../../src/payments/digits.ts';
import type { Gateway, GatewayResult } from '../../src/payments/gateway.ts';
import { CardTestingGuard } from '../../src/payments/guard.ts';
import { SandboxGateway } from '../../src/payments/sandbox.ts';
import { DEFAULT_PAYMENT_SETTINGS, type PaymentEvent, type PaymentRequest, PaymentSession, type PaymentSettings } from '../../src/payments/session.ts';

/** Every CardDigits value made while a test runs (the spy wraps `with`, which every key goes through). */
const made: CardDigits[] = [];
const realWith = CardDigits.prototype.with;
vi.spyOn(CardDigits.prototype, 'with').mockImplementation(function (this: CardDigits, digit: number) {
  const next = realWith.call(this, digit);
  made.push(next);
  return next;
});

const everything: string[] = [];
afterEach(() => {
  made.length = 0;
});

function setup(options: { settings?: Partial<PaymentSettings>; gateway?: Gateway; callerNumber?: string; guard?: CardTestingGuard; clock?: FakeClock; callId?: string } = {}) {
  const clock = options.clock ?? new FakeClock();
  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', destination: new Writable({ write: (chunk: Buffer, _e, done) => (logs.push(chunk.toString()), everything.push(chunk.toString()), done()) }) });
  const gateway = options.gateway ?? new SandboxGateway({ clock });
  const session = new PaymentSession({
    callId: options.callId ?? 'hp_call',
    callerNumber: options.callerNumber ?? '0312345678',
    settings: { ...DEFAULT_PAYMENT_SETTINGS, tenantId: 'shop', ...options.settings },
    gateway,
    guard: options.guard ?? new CardTestingGuard(clock),
    clock,
    logger,
  });
  const events: PaymentEvent[] = [];
  const prompts: string[] = [];
  const masking: boolean[] = [];
  session.on('event', (e) => (events.push(e), everything.push(JSON.stringify(e))));
  session.on('prompt', (p) => (prompts.push(p.prompt), everything.push(JSON.stringify(p))));
  session.on('masking', (m) => masking.push(m));
  const keys = (text: string): void => {
    for (const k of text) session.key(k);
  };
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  };
  return { clock, session, events, prompts, masking, keys, settle, logs, types: () => events.map((e) => e.type) };
}

let n = 0;
/** A sale of ¥12,000 unless overridden; an override of `undefined` leaves the field out. */
const request = (overrides: { [K in keyof PaymentRequest]?: PaymentRequest[K] | undefined } = {}): PaymentRequest => {
  const all: Record<string, unknown> = { paymentId: `pay_${++n}`, idempotencyKey: `idem_${n}`, operation: 'sale', amount: { value: 12_000, currency: 'JPY' }, ...overrides };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as unknown as PaymentRequest;
};

const allWiped = (): boolean => made.length > 0 && made.every((d) => d.wiped);

describe('a payment on a call', () => {
  it('from a scripted digit stream to an approved sandbox sale, the agent submitting', async () => {
    const t = setup();
    expect(t.session.start(request())).toMatchObject({ ok: true });
    t.keys('4242424242424242' + '1230' + '123');
    expect(t.types().at(-1)).toBe('payment.ready');
    t.session.submit();
    await t.settle();
    const completed = t.events.at(-1);
    expect(completed).toMatchObject({ type: 'payment.completed', result: { status: 'approved', brand: 'visa', last4: '4242', amount: 12_000, transactionId: expect.stringMatching(/^pay_/) } });
    expect((completed as { result: GatewayResult }).result.approvalNumber).toMatch(/^\d{6}$/);
    expect(t.types().filter((x) => x !== 'capture.progress')).toEqual(['payment.started', 'payment.ready', 'payment.authorizing', 'payment.completed']);
    expect(t.prompts).toEqual(['enter-card-number', 'enter-expiry', 'enter-security-code', 'processing', 'approved']);
    expect(allWiped()).toBe(true);
    // the call ending afterwards leaves the approved payment as it is: no cancellation after it
    const before = t.events.length;
    await t.session.close();
    expect(t.events.length).toBe(before);
  });

  it('stores a card on file and gets back a reusable token', async () => {
    const t = setup({ settings: { autoSubmit: true } });
    t.session.start(request({ operation: 'store', memberId: 'member-42', amount: undefined }));
    t.keys('5555555555554444' + '0129' + '321');
    await t.settle();
    expect(t.events.at(-1)).toMatchObject({ type: 'payment.completed', result: { operation: 'storeCard', token: expect.stringMatching(/^sbx_tok_/), last4: '4444' } });
    expect(allWiped()).toBe(true);
  });

  it.each([
    ['declined for insufficient funds', '4000000000009995', 'insufficient-funds'],
    ['declined for a wrong security code', '4000000000000127', 'incorrect-security-code'],
    ['a processing error', '4000000000000119', 'processing-error'],
  ])('%s reaches payment.failed with that reason', async (_name, pan, reason) => {
    const t = setup({ settings: { autoSubmit: true } });
    t.session.start(request());
    t.keys(pan + '1230' + '123');
    await t.settle();
    expect(t.events.at(-1)).toMatchObject({ type: 'payment.failed', reason, result: { reason } });
    expect(t.prompts.at(-1)).toBe(reason === 'processing-error' ? 'failed' : 'declined');
    expect(allWiped()).toBe(true);
  });

  it('a gateway that does not answer in time ends in timeout, on the injected clock', async () => {
    const t = setup({ settings: { autoSubmit: true, gatewayTimeoutMs: 20_000 } });
    t.session.start(request());
    t.keys('4000000000003063' + '1230' + '123');
    await t.settle();
    expect(t.types().at(-1)).toBe('payment.authorizing');
    t.clock.advance(20_000);
    await t.settle();
    expect(t.events.at(-1)).toMatchObject({ type: 'payment.failed', reason: 'timeout' });
    expect(allWiped()).toBe(true);
  });

  it('a gateway call that throws ends in payment-connector-error', async () => {
    const clock = new FakeClock();
    const broken = new SandboxGateway({ clock });
    broken.sale = async () => {
      throw new Error('socket hang up');
    };
    const t = setup({ clock, gateway: broken, settings: { autoSubmit: true } });
    t.session.start(request());
    t.keys('4242424242424242' + '1230' + '123');
    await t.settle();
    expect(t.events.at(-1)).toMatchObject({ type: 'payment.failed', reason: 'payment-connector-error' });
    expect(allWiped()).toBe(true);
  });

  it('too many wrong cards, a timeout, and the agent’s cancel each end with their reason', async () => {
    const wrong = setup({ settings: { maxAttempts: 2 } });
    wrong.session.start(request());
    wrong.keys('4242424242424241#4242424242424241#');
    expect(wrong.events.at(-1)).toMatchObject({ type: 'payment.failed', reason: 'too-many-failed-attempts', error: 'invalid-card-number' });
    const slow = setup({ settings: { maxAttempts: 1 } });
    slow.session.start(request());
    slow.clock.advance(10_000);
    expect(slow.events.at(-1)).toMatchObject({ type: 'payment.failed', reason: 'too-many-failed-attempts', error: 'timeout' });
    const cancelled = setup();
    cancelled.session.start(request());
    cancelled.keys('42424242');
    cancelled.session.cancel();
    expect(cancelled.events.at(-1)).toMatchObject({ type: 'payment.cancelled' });
    expect(cancelled.prompts.at(-1)).toBe('cancelled');
    expect(allWiped()).toBe(true);
  });

  it('the call ending mid-capture wipes the digits; mid-authorization it waits for the gateway and reports', async () => {
    const early = setup();
    early.session.start(request());
    early.keys('42424242424');
    await early.session.close();
    expect(early.events.at(-1)).toMatchObject({ type: 'payment.cancelled' });
    expect(allWiped()).toBe(true);

    const late = setup({ settings: { autoSubmit: true, gatewayTimeoutMs: 30_000 } });
    late.session.start(request());
    late.keys('4000000000003063' + '1230' + '123');
    await late.settle();
    const closing = late.session.close();
    late.clock.advance(30_000);
    await closing;
    expect(late.events.at(-1)).toMatchObject({ type: 'payment.failed', reason: 'timeout' });
    expect(allWiped()).toBe(true);
    expect(late.clock.pending).toBe(0);
  });

  it('refuses a second payment while one runs, and a start without what it needs; the same key answers the same payment', () => {
    const t = setup();
    const first = request();
    expect(t.session.start(first)).toEqual({ ok: true, paymentId: first.paymentId });
    expect(t.session.start(first)).toEqual({ ok: true, paymentId: first.paymentId });
    expect(t.session.start(request())).toMatchObject({ ok: false, reason: 'payment-in-progress' });
    t.session.cancel();
    expect(t.session.start(request({ amount: undefined }))).toMatchObject({ ok: false, reason: 'invalid-request' });
    expect(t.session.start(request({ fields: ['payment-card-number'] }))).toMatchObject({ ok: false, reason: 'invalid-request' });
    expect(t.session.start(request({ operation: 'store', amount: undefined }))).toMatchObject({ ok: false, reason: 'invalid-request' });
    expect(t.types().filter((x) => x === 'payment.refused')).toHaveLength(4);
  });

  it('secure policy: masking comes on with the payment and goes off after its result', async () => {
    const t = setup({ settings: { policy: 'secure', autoSubmit: true, resultHoldMs: 3_000 } });
    expect(t.session.masking).toBe(false);
    t.session.start(request());
    expect(t.masking).toEqual([true]);
    t.keys('4242424242424242' + '1230' + '123');
    await t.settle();
    t.clock.advance(3_000);
    expect(t.masking).toEqual([true, false]);
    const always = setup();
    expect(always.session.masking).toBe(true);
  });
});

describe('card-testing guard', () => {
  it('refuses a new payment after the per-call limit of failed cards, with a clear event', async () => {
    const t = setup({ settings: { autoSubmit: true, cardTesting: { perCall: 2, perCallerPerHour: 10 } } });
    for (let i = 0; i < 2; i++) {
      t.session.start(request());
      t.keys('4000000000000002' + '1230' + '123');
      await t.settle();
      t.clock.advance(4_000); // the result is told
    }
    expect(t.session.start(request())).toMatchObject({ ok: false, reason: 'card-testing-limit-call' });
    expect(t.events.at(-1)).toMatchObject({ type: 'payment.refused', reason: 'card-testing-limit-call', message: expect.stringContaining('2 cards failed on this call') });
  });

  it('counts a caller’s failures across calls for an hour, per tenant', async () => {
    const clock = new FakeClock();
    const guard = new CardTestingGuard(clock);
    const limits = { perCall: 10, perCallerPerHour: 2 };
    for (const callId of ['c1', 'c2']) {
      const t = setup({ clock, guard, callId, settings: { autoSubmit: true, cardTesting: limits } });
      t.session.start(request());
      t.keys('4000000000009995' + '1230' + '123');
      await t.settle();
      await t.session.close();
    }
    const third = setup({ clock, guard, callId: 'c3', settings: { cardTesting: limits } });
    expect(third.session.start(request())).toMatchObject({ ok: false, reason: 'card-testing-limit-caller' });
    const otherTenant = setup({ clock, guard, callId: 'c3', settings: { tenantId: 'other', cardTesting: limits } });
    expect(otherTenant.session.start(request())).toMatchObject({ ok: true });
    const otherCaller = setup({ clock, guard, callId: 'c4', callerNumber: '0899999999', settings: { cardTesting: limits } });
    expect(otherCaller.session.start(request())).toMatchObject({ ok: true });
    clock.advance(3_600_000);
    const later = setup({ clock, guard, callId: 'c5', settings: { cardTesting: limits } });
    expect(later.session.start(request())).toMatchObject({ ok: true });
  });
});

describe('card data', () => {
  it('no event, prompt or log line of any test above holds a card number, an expiry or a security code', () => {
    // runs last: `everything` holds what every session in this file emitted
    expect(everything.length).toBeGreaterThan(200);
    const text = everything.join('\n');
    for (const secret of ['4242424242424242', '5555555555554444', '4000000000009995', '4000000000003063', '424242424', '1230', '0129', '"123"', '"321"']) {
      expect(text.includes(secret), secret.slice(-4)).toBe(false);
    }
  });
});
