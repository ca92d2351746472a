/**
 * The Stripe gateway through the official `stripe` package, over real HTTP on loopback, against
 * the fake Stripe in test/support/fakeStripe.ts: what reaches the wire (MOTO, installments, the
 * idempotency keys), every decline card, the retry rule, idempotency conflicts, the deadline on
 * a fake clock — and no card number or security code in anything returned, thrown or recorded.
 */

import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock, type TimerHandle } from '../../src/clock.ts';
import { GatewayRequestError, InvalidStateError } from '../../src/errors.ts';
import { type CardBrand, brandOf } from '../../src/payments/card.ts';
import { CardDigits } from '../../src/payments/digits.ts';
import type { CardInput, GatewayResult, PaymentMethod } from '../../src/payments/gateway.ts';
import { MAX_ATTEMPTS, StripeGateway } from '../../src/payments/stripe.ts';
import { FakeStripe, type Params } from '../support/fakeStripe.ts';

/** A FakeClock that tells when a timer of a given length is set (a retry's pause). */
class WatchedClock extends FakeClock {
  readonly #set: number[] = [];
  readonly #waiting: { ms: number; resolve: () => void }[] = [];

  override setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = super.setTimeout(callback, ms);
    const i = this.#waiting.findIndex((w) => w.ms === ms);
    if (i >= 0) this.#waiting.splice(i, 1)[0]!.resolve();
    else this.#set.push(ms);
    return handle;
  }

  /** Resolves once a timer of `ms` has been set (counting one set before the call, once). */
  timerSet(ms: number): Promise<void> {
    const i = this.#set.indexOf(ms);
    if (i >= 0) {
      this.#set.splice(i, 1);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push({ ms, resolve }));
  }
}

const PANS = ['4242424242424242', '5555555555554444', '378282246310005', '3530111333300000', '4000000000009995', '4000000000000069', '4000000000000127', '4000000000009987', '4000000000009979', '4000000000000119', '4000000000000002', '4242424242424241'];
/** Security codes no amount, ID or time in these tests contains. */
const CVC = '737';
const CID = '8431';

function card(pan: string): CardInput {
  const digits = CardDigits.of(pan);
  const brand = brandOf(digits) as CardBrand;
  return { pan: digits, securityCode: CardDigits.of(brand === 'amex' ? CID : CVC), expiry: { month: 12, year: 2030 }, brand };
}

/** Everything the gateway returned or threw, for the card-data check at the end. */
const returned: unknown[] = [];
const keep = (r: GatewayResult): GatewayResult => (returned.push(r), r);
async function thrown(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    const e = error as Error & { code?: string };
    returned.push({ ...e, name: e.name, code: e.code, message: e.message });
    return error;
  }
  throw new Error('expected a throw');
}

let keys = 0;
const newKey = (): string => `key-${++keys}`;

const fake = new FakeStripe();
let clock: WatchedClock;
const gateways: StripeGateway[] = [];

function gateway(options: { retryDelayMs?: number; apiKey?: string } = {}): StripeGateway {
  const g = new StripeGateway({ apiKey: options.apiKey ?? fake.apiKey, host: '127.0.0.1', port: fake.port, protocol: 'http', clock, retryDelayMs: options.retryDelayMs ?? 1_000 });
  gateways.push(g);
  return g;
}

const sale = (g: StripeGateway, pan: string, idempotencyKey = newKey(), extra: { amount?: number; currency?: string; method?: PaymentMethod; timeoutMs?: number; signal?: AbortSignal } = {}) =>
  g.sale(
    { orderId: `order-${idempotencyKey}`, amount: extra.amount ?? 1_200, currency: extra.currency ?? 'JPY', card: card(pan), ...(extra.method ? { method: extra.method } : {}) },
    { idempotencyKey, ...(extra.timeoutMs !== undefined ? { timeoutMs: extra.timeoutMs } : {}), ...(extra.signal ? { signal: extra.signal } : {}) },
  );

const PI = { method: 'POST', path: '/v1/payment_intents' } as const;
const last = <T>(list: readonly T[]): T => list[list.length - 1]!;
const sub = (p: Params, key: string): Params => p[key] as Params;

beforeAll(() => fake.start());
afterAll(() => fake.close());
beforeEach(() => {
  clock = new WatchedClock();
});
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.close();
  // every call disposed its deadline and its pauses
  expect(clock.pending).toBe(0);
});

describe('stripe gateway', () => {
  it('sells with a PaymentMethod then a confirmed MOTO PaymentIntent, the digits on the wire only in the card fields', async () => {
    const key = newKey();
    const r = keep(await sale(gateway(), '4242424242424242', key, { amount: 12_000 }));
    expect(r).toMatchObject({ gateway: 'stripe', operation: 'sale', status: 'approved', resultCode: 'succeeded', transactionId: `order-${key}`, brand: 'visa', last4: '4242', amount: 12_000, currency: 'JPY' });
    expect(r.requestedAt).toBe(new Date(clock.wallMs()).toISOString());
    const charge = last(fake.charges);
    expect(r.transactionRef).toBe(charge.paymentIntent);
    expect(r.approvalNumber).toBe(charge.authorizationCode);
    expect(charge).toMatchObject({ amount: 12_000, currency: 'jpy', captured: true });

    const [pm] = fake.seen({ method: 'POST', path: '/v1/payment_methods' }).filter((s) => s.idempotencyKey === `${key}:pm`);
    expect(pm?.params).toMatchObject({ type: 'card', card: { number: '[card number: 16 digits]', cvc: '[cvc: 3 digits]', exp_month: '12', exp_year: '2030' } });
    const pi = fake.seen(PI).filter((s) => s.idempotencyKey === `${key}:pi`);
    expect(pi).toHaveLength(1);
    expect(pi[0]!.params).toMatchObject({
      amount: '12000',
      currency: 'jpy',
      confirm: 'true',
      capture_method: 'automatic',
      payment_method_options: { card: { moto: 'true' } },
      metadata: { order_id: `order-${key}` },
    });
    expect(sub(pi[0]!.params, 'payment_method_options')).not.toHaveProperty('card.installments');
    // the header that carries a request's call to our fetch never leaves the process
    for (const s of [pm!, pi[0]!]) {
      expect(s.headerNames).toContain('idempotency-key');
      expect(s.headerNames).not.toContain('x-hushpay-call');
    }
  });

  it('refuses without MOTO: the fake requires it, so the approval above is proof it was sent', async () => {
    const key = newKey();
    // a raw request through the same package, without the flag, is refused by the fake
    const raw = new Stripe(fake.apiKey, { host: '127.0.0.1', port: fake.port, protocol: 'http', maxNetworkRetries: 0 });
    const method = await raw.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030 } }, { idempotencyKey: `${key}:raw-pm` });
    const refused = await raw.paymentIntents.create({ amount: 100, currency: 'jpy', payment_method: method.id, confirm: true }, { idempotencyKey: `${key}:raw-pi` }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ statusCode: 400, param: 'payment_method_options[card][moto]' });
  });

  it('authorizes with manual capture, then captures part of it once', async () => {
    const g = gateway();
    const auth = keep(await g.authorize({ orderId: 'o-auth', amount: 10_000, currency: 'JPY', card: card('5555555555554444') }, { idempotencyKey: newKey() }));
    expect(auth).toMatchObject({ status: 'approved', resultCode: 'requires_capture', brand: 'mastercard', last4: '4444', amount: 10_000 });
    expect(last(fake.seen(PI)).params).toMatchObject({ capture_method: 'manual', payment_method_options: { card: { moto: 'true' } } });
    expect(last(fake.charges)).toMatchObject({ paymentIntent: auth.transactionRef, captured: false });

    const captureKey = newKey();
    const captured = keep(await g.capture({ orderId: 'o-auth', transactionRef: auth.transactionRef!, amount: 8_000 }, { idempotencyKey: captureKey }));
    expect(captured).toMatchObject({ operation: 'capture', status: 'approved', resultCode: 'succeeded', transactionRef: auth.transactionRef, amount: 8_000, currency: 'JPY', last4: '4444' });
    const [wire] = fake.seen({ method: 'POST', path: `/v1/payment_intents/${auth.transactionRef}/capture` });
    expect(wire).toMatchObject({ idempotencyKey: `${captureKey}:capture`, params: { amount_to_capture: '8000' } });

    const again = keep(await g.capture({ orderId: 'o-auth', transactionRef: auth.transactionRef! }, { idempotencyKey: newKey() }));
    expect(again).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'invalid_request_error', detailCode: 'payment_intent_unexpected_state' });
  });

  it('voids an authorization (PaymentIntent cancel), and only once', async () => {
    const g = gateway();
    const auth = keep(await g.authorize({ orderId: 'o-void', amount: 700, currency: 'JPY', card: card('3530111333300000') }, { idempotencyKey: newKey() }));
    expect(auth).toMatchObject({ status: 'approved', brand: 'jcb' });
    const voided = keep(await g.void({ orderId: 'o-void', transactionRef: auth.transactionRef! }, { idempotencyKey: newKey() }));
    expect(voided).toMatchObject({ operation: 'void', status: 'approved', resultCode: 'canceled', transactionRef: auth.transactionRef, amount: 700 });
    expect(fake.seen({ method: 'POST', path: `/v1/payment_intents/${auth.transactionRef}/cancel` })).toHaveLength(1);
    expect(keep(await g.void({ orderId: 'o-void', transactionRef: auth.transactionRef! }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', reason: 'invalid-request' });
    expect(keep(await g.capture({ orderId: 'o-void', transactionRef: auth.transactionRef! }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', reason: 'invalid-request' });
  });

  it('refunds part of a sale, refuses more than remains, then refunds the rest', async () => {
    const g = gateway();
    const paid = keep(await sale(g, '4242424242424242', newKey(), { amount: 5_000 }));
    const ref = paid.transactionRef!;
    const refundKey = newKey();
    expect(keep(await g.refund({ orderId: 'o-r', transactionRef: ref, amount: 2_000 }, { idempotencyKey: refundKey }))).toMatchObject({ operation: 'refund', status: 'approved', resultCode: 'succeeded', amount: 2_000, transactionRef: ref });
    expect(last(fake.seen({ method: 'POST', path: '/v1/refunds' }))).toMatchObject({ idempotencyKey: `${refundKey}:refund`, params: { payment_intent: ref, amount: '2000' } });
    expect(keep(await g.refund({ orderId: 'o-r', transactionRef: ref, amount: 4_000 }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', reason: 'invalid-request', detailCode: 'amount_too_large' });
    expect(keep(await g.refund({ orderId: 'o-r', transactionRef: ref }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'approved', amount: 3_000 });
  });

  it('verifies a card with a confirmed MOTO SetupIntent and no charge', async () => {
    const g = gateway();
    const charges = fake.charges.length;
    const key = newKey();
    const ok = keep(await g.verify({ orderId: 'o-verify', card: card('378282246310005') }, { idempotencyKey: key }));
    expect(ok).toMatchObject({ operation: 'verify', status: 'approved', resultCode: 'succeeded', brand: 'amex', last4: '0005' });
    expect(ok.transactionRef).toMatch(/^seti_/);
    expect(last(fake.seen({ method: 'POST', path: '/v1/setup_intents' }))).toMatchObject({ idempotencyKey: `${key}:si`, params: { confirm: 'true', payment_method_options: { card: { moto: 'true' } }, metadata: { order_id: 'o-verify' } } });
    expect(last(fake.seen({ method: 'POST', path: '/v1/payment_methods' })).params).toMatchObject({ card: { cvc: '[cvc: 4 digits]', number: '[card number: 15 digits]' } });
    const bad = keep(await g.verify({ orderId: 'o-verify-2', card: card('4000000000000002') }, { idempotencyKey: newKey() }));
    expect(bad).toMatchObject({ status: 'declined', reason: 'card-declined', resultCode: 'card_error', detailCode: 'generic_decline', gatewayErrorCode: 'card_declined' });
    expect(bad.transactionRef).toMatch(/^seti_/);
    expect(fake.charges.length).toBe(charges);
  });

  it('files a card under a member and charges it by token and by member, off-session', async () => {
    const g = gateway();
    const member = `member-${newKey()}`;
    const storeKey = newKey();
    const stored = keep(await g.storeCard({ memberId: member, card: card('4242424242424242') }, { idempotencyKey: storeKey }));
    expect(stored).toMatchObject({ operation: 'storeCard', status: 'approved', transactionId: member, brand: 'visa', last4: '4242' });
    expect(stored.token).toMatch(/^pm_/);
    const [created] = fake.seen({ method: 'POST', path: '/v1/customers' }).filter((s) => s.idempotencyKey === `${storeKey}:customer`);
    expect(created?.params).toEqual({ metadata: { member_id: member } });
    const setup = last(fake.seen({ method: 'POST', path: '/v1/setup_intents' }));
    expect(setup.params).toMatchObject({ usage: 'off_session', payment_method: stored.token, confirm: 'true' });
    const customer = String(setup.params.customer);
    expect(last(fake.seen({ method: 'POST', path: `/v1/customers/${customer}` })).params).toEqual({ invoice_settings: { default_payment_method: stored.token } });

    const byToken = keep(await g.chargeStored({ orderId: 'o-tok', amount: 980, currency: 'JPY', token: stored.token! }, { idempotencyKey: newKey() }));
    expect(byToken).toMatchObject({ operation: 'chargeStored', status: 'approved', resultCode: 'succeeded', amount: 980, last4: '4242', token: stored.token });
    expect(last(fake.seen(PI)).params).toMatchObject({ customer, payment_method: stored.token, off_session: 'true', confirm: 'true', metadata: { order_id: 'o-tok' } });

    // a second gateway knows nothing of the member: it finds the customer by search
    const other = gateway();
    const byMember = keep(await other.chargeStored({ orderId: 'o-mem', amount: 450, currency: 'JPY', memberId: member }, { idempotencyKey: newKey() }));
    expect(byMember).toMatchObject({ status: 'approved', amount: 450, token: stored.token });
    expect(last(fake.seen({ method: 'GET', path: '/v1/customers/search' })).params).toEqual({ query: `metadata['member_id']:'${member}'`, limit: '1' });

    // a second card for the member joins the same customer and becomes its default
    const customersBefore = fake.seen({ method: 'POST', path: '/v1/customers' }).length;
    const second = keep(await other.storeCard({ memberId: member, card: card('5555555555554444') }, { idempotencyKey: newKey() }));
    expect(fake.seen({ method: 'POST', path: '/v1/customers' })).toHaveLength(customersBefore);
    expect(keep(await g.chargeStored({ orderId: 'o-mem-2', amount: 300, currency: 'JPY', memberId: member }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'approved', last4: '4444', token: second.token });

    expect(keep(await g.chargeStored({ orderId: 'o-nobody', amount: 300, currency: 'JPY', memberId: `nobody-${newKey()}` }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', reason: 'invalid-request', detailCode: 'resource_missing' });
    expect(keep(await g.chargeStored({ orderId: 'o-mismatch', amount: 300, currency: 'JPY', token: stored.token!, memberId: `nobody-${newKey()}` }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', reason: 'invalid-request' });
    expect(await thrown(() => g.chargeStored({ orderId: 'o-neither', amount: 300, currency: 'JPY' }, { idempotencyKey: newKey() }))).toBeInstanceOf(GatewayRequestError);
  });

  it('a declined card is not filed: no token, no default', async () => {
    const g = gateway();
    const member = `member-${newKey()}`;
    const r = keep(await g.storeCard({ memberId: member, card: card('4000000000009995') }, { idempotencyKey: newKey() }));
    expect(r).toMatchObject({ status: 'declined', reason: 'insufficient-funds', detailCode: 'insufficient_funds' });
    expect(r.token).toBeUndefined();
    expect(keep(await g.chargeStored({ orderId: 'o-m', amount: 1_000, currency: 'JPY', memberId: member }, { idempotencyKey: newKey() }))).toMatchObject({ status: 'error', detailCode: 'resource_missing' });
  });

  it.each<[string, PaymentMethod, Params | undefined]>([
    ['分割 3 回', { kind: 'installments', count: 3 }, { type: 'fixed_count', count: '3', interval: 'month' }],
    ['ボーナス一括', { kind: 'bonus-lump' }, { type: 'bonus' }],
    ['リボ', { kind: 'revolving' }, { type: 'revolving' }],
    ['一括', { kind: 'lump' }, undefined],
  ])('sends the JP payment method %s as Stripe installments', async (_name, method, plan) => {
    const key = newKey();
    const r = keep(await sale(gateway(), '3530111333300000', key, { amount: 30_000, method }));
    expect(r).toMatchObject({ status: 'approved', amount: 30_000 });
    const [pi] = fake.seen(PI).filter((s) => s.idempotencyKey === `${key}:pi`);
    const card = sub(sub(pi!.params, 'payment_method_options'), 'card');
    expect(card.moto).toBe('true');
    if (plan) expect(card.installments).toEqual({ plan });
    else expect(card).not.toHaveProperty('installments');
    expect(last(fake.charges).installments).toEqual(plan ?? null);
  });

  it('passes on Stripe refusing installments outside JPY as an invalid request', async () => {
    const r = keep(await sale(gateway(), '4242424242424242', newKey(), { currency: 'USD', method: { kind: 'installments', count: 6 } }));
    expect(r).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'invalid_request_error' });
    expect(r.gatewayErrorMessage).toMatch(/JPY/);
  });

  it.each([
    ['4000000000009995', 'insufficient-funds', 'card_declined', 'insufficient_funds'],
    ['4000000000000069', 'expired-card', 'expired_card', 'expired_card'],
    ['4000000000000127', 'incorrect-security-code', 'incorrect_cvc', 'incorrect_cvc'],
    ['4000000000009987', 'lost-or-stolen', 'card_declined', 'lost_card'],
    ['4000000000009979', 'lost-or-stolen', 'card_declined', 'stolen_card'],
    ['4000000000000119', 'processing-error', 'processing_error', 'processing_error'],
    ['4000000000000002', 'card-declined', 'card_declined', 'generic_decline'],
    ['4242424242424241', 'incorrect-number', 'incorrect_number', undefined],
  ])('declines %s as %s, keeping Stripe code %s / %s, sent once (a 402 is an answer)', async (pan, reason, code, declineCode) => {
    const key = newKey();
    const charges = fake.charges.length;
    const r = keep(await sale(gateway(), pan, key));
    expect(r).toMatchObject({ status: 'declined', reason, resultCode: 'card_error', detailCode: declineCode ?? code, gatewayErrorCode: code, last4: pan.slice(-4), brand: 'visa' });
    expect(r.gatewayErrorMessage).toMatch(/card/i);
    expect(r.approvalNumber).toBeUndefined();
    const attempts = fake.requests.filter((s) => s.idempotencyKey?.startsWith(`${key}:`) && s.status === 402);
    expect(attempts).toHaveLength(1);
    if (declineCode) {
      // declined by the confirmed PaymentIntent, which Stripe keeps (status requires_payment_method)
      expect(attempts[0]!.path).toBe('/v1/payment_intents');
      expect(r.transactionRef).toMatch(/^pi_/);
    } else {
      // refused when the payment method was made: there is no PaymentIntent
      expect(attempts[0]!.path).toBe('/v1/payment_methods');
      expect(r.transactionRef).toBeUndefined();
    }
    expect(fake.charges.length).toBe(charges);
    expect(clock.pending).toBe(0); // no retry pause was started
  });

  it.each<[string, number | 'reset', boolean]>([
    ['a 500', 500, false],
    ['a 503', 503, false],
    ['a 429', 429, false],
    ["a proxy's 502 page (not Stripe's JSON)", 502, true],
    ['a dropped connection', 'reset', false],
  ])('after %s, sends the PaymentIntent again with the same key after a pause on the clock, and charges once', async (_name, status, html) => {
    const key = newKey();
    const charges = fake.charges.length;
    fake.failNext(PI, { status, html });
    const pending = sale(gateway({ retryDelayMs: 1_000 }), '4242424242424242', key);
    await clock.timerSet(1_000);
    const sent = fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`);
    expect(sent).toHaveLength(1); // nothing is sent again until the clock moves
    clock.advance(1_000);
    const r = keep(await pending);
    expect(r).toMatchObject({ status: 'approved', resultCode: 'succeeded' });
    const both = fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`);
    expect(both.map((s) => s.status)).toEqual([status === 'reset' ? 0 : status, 200]);
    expect(fake.charges.length).toBe(charges + 1);
    expect(last(fake.charges).paymentIntent).toBe(r.transactionRef);
  });

  it(`gives up after ${MAX_ATTEMPTS} sends, the pause doubling, and reports Stripe's api_error`, async () => {
    const key = newKey();
    fake.failNext(PI, { status: 500, times: MAX_ATTEMPTS });
    const pending = sale(gateway({ retryDelayMs: 1_000 }), '4242424242424242', key);
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const pauseMs = 1_000 * 2 ** (attempt - 1);
      await clock.timerSet(pauseMs);
      clock.advance(pauseMs);
    }
    const r = keep(await pending);
    expect(r).toMatchObject({ status: 'error', reason: 'processing-error', resultCode: 'api_error' });
    expect(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`).map((s) => s.status)).toEqual(Array(MAX_ATTEMPTS).fill(500));
  });

  it('does not retry a 500 that Stripe marks Stripe-Should-Retry: false', async () => {
    const key = newKey();
    fake.failNext(PI, { status: 500, shouldRetry: false });
    const r = keep(await sale(gateway(), '4242424242424242', key));
    expect(r).toMatchObject({ status: 'error', reason: 'processing-error' });
    expect(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`)).toHaveLength(1);
  });

  it('replays a repeated operation: the same key and request answer the same PaymentIntent, charged once', async () => {
    const g = gateway();
    const key = newKey();
    const first = keep(await sale(g, '4242424242424242', key));
    const charges = fake.charges.length;
    const again = keep(await sale(g, '4242424242424242', key));
    expect(again).toMatchObject({ status: 'approved', transactionRef: first.transactionRef, approvalNumber: first.approvalNumber });
    expect(fake.charges.length).toBe(charges);
    expect(last(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`)).replayed).toBe(true);
  });

  it('answers a key reused for another request (400 idempotency_error) as an invalid request, not retried', async () => {
    const g = gateway();
    const key = newKey();
    keep(await sale(g, '4242424242424242', key, { amount: 100 }));
    const charges = fake.charges.length;
    const r = keep(await sale(g, '4242424242424242', key, { amount: 200 }));
    expect(r).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'idempotency_error' });
    expect(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`).map((s) => s.status)).toEqual([200, 400]);
    expect(fake.charges.length).toBe(charges);
  });

  it('answers a key still in use (409) as an invalid request, not retried, while the first call completes', async () => {
    const g = gateway();
    const key = newKey();
    const hold = fake.hold(PI);
    const first = sale(g, '4242424242424242', key);
    await hold.arrived;
    const second = keep(await sale(g, '4242424242424242', key));
    expect(second).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'idempotency_error' });
    expect(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`).map((s) => s.status)).toEqual([undefined, 409]);
    hold.release();
    expect(keep(await first)).toMatchObject({ status: 'approved' });
  });

  it('ends the call at the deadline on the injected clock, aborting the HTTP request; the same key later tells what Stripe did', async () => {
    const g = gateway();
    const key = newKey();
    const hold = fake.hold(PI);
    const pending = sale(g, '4242424242424242', key, { timeoutMs: 5_000 });
    await hold.arrived;
    clock.advance(5_000);
    const r = keep(await pending);
    expect(r).toMatchObject({ status: 'error', reason: 'timeout', resultCode: 'timeout', detailCode: 'timeout' });
    expect(Date.parse(r.respondedAt) - Date.parse(r.requestedAt)).toBe(5_000);
    await hold.clientGone; // the request itself was aborted, not just ignored
    // Stripe carries on with a request it received; a retry with the key replays its answer
    hold.release();
    await expect.poll(() => fake.requests.find((s) => s.idempotencyKey === `${key}:pi`)?.status).toBe(200);
    const learned = keep(await sale(g, '4242424242424242', key));
    expect(learned).toMatchObject({ status: 'approved' });
    expect(learned.transactionRef).toBe(last(fake.charges).paymentIntent);
  });

  it('stops retrying at the deadline', async () => {
    const key = newKey();
    fake.failNext(PI, { status: 503, times: 2 });
    const pending = sale(gateway({ retryDelayMs: 1_000 }), '4242424242424242', key, { timeoutMs: 2_500 });
    await clock.timerSet(1_000);
    clock.advance(1_000);
    await clock.timerSet(2_000);
    clock.advance(1_500);
    const r = keep(await pending);
    expect(r).toMatchObject({ status: 'error', reason: 'timeout' });
    expect(fake.requests.filter((s) => s.idempotencyKey === `${key}:pi`)).toHaveLength(2);
  });

  it("answers error/timeout (aborted) for the caller's signal and for close(); closed, it throws", async () => {
    const g = gateway();
    const hold = fake.hold(PI);
    const controller = new AbortController();
    const pending = sale(g, '4242424242424242', newKey(), { signal: controller.signal });
    await hold.arrived;
    controller.abort();
    expect(keep(await pending)).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'aborted' });
    await hold.clientGone;
    hold.release();

    const hold2 = fake.hold(PI);
    const inFlight = sale(g, '4242424242424242', newKey());
    await hold2.arrived;
    await g.close();
    await g.close();
    expect(keep(await inFlight)).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'aborted' });
    hold2.release();
    expect(await thrown(() => sale(g, '4242424242424242'))).toBeInstanceOf(InvalidStateError);
  });

  it('reports a wrong API key as an invalid request, and a wiped card by throwing', async () => {
    expect(keep(await sale(gateway({ apiKey: 'sk_test_wrong' }), '4242424242424242'))).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'invalid_request_error' });
    const wiped = card('4242424242424242');
    wiped.pan.wipe();
    const error = await thrown(() => gateway().sale({ orderId: 'o-wiped', amount: 100, currency: 'JPY', card: wiped }, { idempotencyKey: newKey() }));
    expect(error).toBeInstanceOf(InvalidStateError);
  });

  it('leaves no card number or security code in any result, thrown error, or the fake’s record', () => {
    const record = JSON.stringify(fake.requests);
    const everything = JSON.stringify(returned) + record + JSON.stringify(fake.charges);
    const cardData = (text: string): string[] => [...PANS.filter((pan) => text.includes(pan)), ...(text.match(new RegExp(`(?<![0-9])(${CVC}|${CID})(?![0-9])`, 'g')) ?? [])];
    // the check finds what it looks for
    expect(cardData(JSON.stringify({ number: PANS[0], cvc: CVC }))).toHaveLength(2);
    expect(returned.length).toBeGreaterThan(40);
    expect(cardData(everything)).toEqual([]);
    // and the card data was sent: the record shows where, by length only
    expect(record.match(/\[card number: 1[56] digits\]/g)?.length).toBeGreaterThan(20);
    expect(record.match(/\[cvc: [34] digits\]/g)?.length).toBeGreaterThan(20);
  });
});
