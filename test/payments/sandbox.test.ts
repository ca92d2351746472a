/**
 * The sandbox gateway, in-process and over HTTP (the same bank behind both): every test card's
 * answer, the follow-on operations, card on file, idempotency, the slow card against the
 * deadline on a fake clock — and no card digits in anything it returns.
 */

import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { type CardBrand, brandOf } from '../../src/payments/card.ts';
import { CardDigits } from '../../src/payments/digits.ts';
import type { CardInput, Gateway, GatewayResult } from '../../src/payments/gateway.ts';
import { SandboxGateway, SandboxHttpGateway, type SandboxServer, startSandboxServer } from '../../src/payments/sandbox.ts';

const seen: unknown[] = [];
const PANS = ['4242424242424242', '5555555555554444', '378282246310005', '3530111333300000', '4000000000009995', '4000000000000069', '4000000000000127', '4000000000009987', '4000000000009979', '4000000000000002', '4000000000000119', '4000000000003063'];

function card(pan: string, expiry = { month: 12, year: 2030 }): CardInput {
  const digits = CardDigits.of(pan);
  const brand = brandOf(digits) as CardBrand;
  return { pan: digits, securityCode: CardDigits.of(brand === 'amex' ? '1234' : '123'), expiry, brand };
}

let keys = 0;
const key = (): { idempotencyKey: string } => ({ idempotencyKey: `k${++keys}` });
const keep = (r: GatewayResult): GatewayResult => (seen.push(r), r);

const servers: SandboxServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  // nothing the gateway answered holds a card number or a security code
  const text = JSON.stringify(seen);
  expect(seen.length).toBeGreaterThan(50);
  for (const pan of PANS) expect(text.includes(pan), `a result holds ${pan.slice(-4)}`).toBe(false);
  expect(text.match(/"1234"|"123"/), 'a result holds a security code').toBeNull();
});

describe.each([
  ['in-process', async (clock: FakeClock): Promise<Gateway> => new SandboxGateway({ clock })],
  [
    'over HTTP',
    async (clock: FakeClock): Promise<Gateway> => {
      const server = await startSandboxServer({ clock });
      servers.push(server);
      return new SandboxHttpGateway({ url: server.url, clock });
    },
  ],
] as const)('sandbox gateway %s', (_name, make) => {
  it('approves the success cards of every brand, with an approval number, a reference, brand and last four', async () => {
    const clock = new FakeClock();
    const gateway = await make(clock);
    for (const [i, pan] of ['4242424242424242', '5555555555554444', '378282246310005', '3530111333300000'].entries()) {
      const r = keep(await gateway.sale({ orderId: `o-brand-${i}`, amount: 12_000, currency: 'JPY', card: card(pan) }, key()));
      expect(r).toMatchObject({ gateway: 'sandbox', operation: 'sale', status: 'approved', resultCode: 'OK', transactionId: `o-brand-${i}`, last4: pan.slice(-4), amount: 12_000, currency: 'JPY' });
      expect(r.approvalNumber).toMatch(/^\d{6}$/);
      expect(r.transactionRef).toMatch(/^sbx_[0-9a-f]{24}$/);
      expect(r.requestedAt).toBe(new Date(clock.wallMs()).toISOString());
    }
  });

  it.each([
    ['4000000000009995', 'declined', 'insufficient-funds', 'insufficient_funds'],
    ['4000000000000069', 'declined', 'expired-card', 'expired_card'],
    ['4000000000000127', 'declined', 'incorrect-security-code', 'incorrect_cvc'],
    ['4000000000009987', 'declined', 'lost-or-stolen', 'lost_card'],
    ['4000000000009979', 'declined', 'lost-or-stolen', 'stolen_card'],
    ['4000000000000002', 'declined', 'card-declined', 'card_declined'],
    ['4000000000000119', 'error', 'processing-error', 'processing_error'],
  ])('answers %s with %s / %s, keeping its own code', async (pan, status, reason, code) => {
    const gateway = await make(new FakeClock());
    const r = keep(await gateway.authorize({ orderId: 'o-decline', amount: 500, currency: 'JPY', card: card(pan) }, key()));
    expect(r).toMatchObject({ status, reason, detailCode: code, gatewayErrorCode: code, last4: pan.slice(-4) });
    expect(r.transactionRef).toBeUndefined();
    expect(r.message.length).toBeGreaterThan(5);
  });

  it('declines a card past its expiry, whatever the number', async () => {
    const gateway = await make(new FakeClock());
    const r = keep(await gateway.verify({ orderId: 'o-exp', card: card('4242424242424242', { month: 10, year: 2026 }) }, key()));
    expect(r).toMatchObject({ status: 'declined', reason: 'expired-card' });
  });

  it('captures part of an authorization once, voids only an authorization, refunds up to what was captured', async () => {
    const gateway = await make(new FakeClock());
    const auth = keep(await gateway.authorize({ orderId: 'o-1', amount: 10_000, currency: 'JPY', card: card('4242424242424242') }, key()));
    const ref = auth.transactionRef!;
    expect(keep(await gateway.capture({ orderId: 'o-1', transactionRef: ref, amount: 20_000 }, key()))).toMatchObject({ status: 'declined', reason: 'invalid-request' });
    expect(keep(await gateway.capture({ orderId: 'o-1', transactionRef: ref, amount: 8_000 }, key()))).toMatchObject({ status: 'approved', amount: 8_000 });
    expect(keep(await gateway.capture({ orderId: 'o-1', transactionRef: ref }, key()))).toMatchObject({ status: 'declined', detailCode: 'transaction_state' });
    expect(keep(await gateway.void({ orderId: 'o-1', transactionRef: ref }, key()))).toMatchObject({ status: 'declined', detailCode: 'transaction_state' });
    expect(keep(await gateway.refund({ orderId: 'o-1', transactionRef: ref, amount: 5_000 }, key()))).toMatchObject({ status: 'approved', amount: 5_000 });
    expect(keep(await gateway.refund({ orderId: 'o-1', transactionRef: ref, amount: 5_000 }, key()))).toMatchObject({ status: 'declined', detailCode: 'amount_too_large' });
    expect(keep(await gateway.refund({ orderId: 'o-1', transactionRef: ref }, key()))).toMatchObject({ status: 'approved', amount: 3_000 });
    const other = keep(await gateway.authorize({ orderId: 'o-2', amount: 700, currency: 'JPY', card: card('5555555555554444') }, key()));
    expect(keep(await gateway.void({ orderId: 'o-2', transactionRef: other.transactionRef! }, key()))).toMatchObject({ status: 'approved' });
    expect(keep(await gateway.capture({ orderId: 'o-2', transactionRef: 'sbx_nope' }, key()))).toMatchObject({ status: 'declined', detailCode: 'resource_missing' });
  });

  it('files a card under a member and charges it later by token or by member, keeping its test behaviour', async () => {
    const gateway = await make(new FakeClock());
    const stored = keep(await gateway.storeCard({ memberId: 'm-1', card: card('4242424242424242') }, key()));
    expect(stored).toMatchObject({ status: 'approved', last4: '4242', brand: 'visa' });
    expect(stored.token).toMatch(/^sbx_tok_/);
    expect(keep(await gateway.chargeStored({ orderId: 'o-m1', amount: 980, currency: 'JPY', token: stored.token! }, key()))).toMatchObject({ status: 'approved', last4: '4242', amount: 980 });
    expect(keep(await gateway.chargeStored({ orderId: 'o-m2', amount: 980, currency: 'JPY', memberId: 'm-1' }, key()))).toMatchObject({ status: 'approved' });
    const poor = keep(await gateway.storeCard({ memberId: 'm-2', card: card('4000000000009995') }, key()));
    expect(poor).toMatchObject({ status: 'declined', reason: 'insufficient-funds' });
    expect(keep(await gateway.chargeStored({ orderId: 'o-m3', amount: 1, currency: 'JPY', memberId: 'm-2' }, key()))).toMatchObject({ status: 'declined', detailCode: 'resource_missing' });
    expect(keep(await gateway.chargeStored({ orderId: 'o-m4', amount: 1, currency: 'JPY', token: stored.token!, memberId: 'm-9' }, key()))).toMatchObject({ status: 'declined', reason: 'invalid-request' });
  });

  it('answers the same idempotency key with the same result, and refuses it for a different request', async () => {
    const gateway = await make(new FakeClock());
    const options = key();
    const first = keep(await gateway.sale({ orderId: 'o-idem', amount: 100, currency: 'JPY', card: card('4242424242424242') }, options));
    const again = keep(await gateway.sale({ orderId: 'o-idem', amount: 100, currency: 'JPY', card: card('4242424242424242') }, options));
    expect(again.transactionRef).toBe(first.transactionRef);
    expect(again.approvalNumber).toBe(first.approvalNumber);
    const changed = keep(await gateway.sale({ orderId: 'o-idem', amount: 200, currency: 'JPY', card: card('4242424242424242') }, options));
    expect(changed).toMatchObject({ status: 'declined', reason: 'invalid-request', detailCode: 'idempotency_error' });
  });

  it('gives up on the slow card when the deadline passes, on the injected clock', async () => {
    const clock = new FakeClock();
    const gateway = await make(clock);
    let settled: GatewayResult | undefined;
    const pending = gateway.sale({ orderId: 'o-slow', amount: 100, currency: 'JPY', card: card('4000000000003063') }, { ...key(), timeoutMs: 30_000 }).then((r) => (settled = keep(r)));
    for (let i = 0; i < 50 && settled === undefined; i++) {
      await new Promise((r) => setTimeout(r, 2)); // let the request reach the server
      clock.advance(1_000);
    }
    await pending;
    expect(settled).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'timeout' });
    expect(Date.parse(settled!.respondedAt) - Date.parse(settled!.requestedAt)).toBeGreaterThanOrEqual(30_000);
    expect(Date.parse(settled!.respondedAt) - Date.parse(settled!.requestedAt)).toBeLessThan(60_000);
    expect(clock.pending).toBe(0);
  });
});

describe('sandbox HTTP server', () => {
  it('refuses malformed requests with a coded error that names fields, never values', async () => {
    const server = await startSandboxServer({ clock: new FakeClock() });
    servers.push(server);
    const post = async (path: string, body: unknown, headers: Record<string, string> = { 'idempotency-key': `h${++keys}` }) => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
    };
    expect(await post('/v1/sale', { amount: 1 }, {})).toMatchObject({ status: 400, body: { error: { code: 'idempotency_key_missing' } } });
    expect(await post('/v1/sale', '{nope')).toMatchObject({ status: 400, body: { error: { code: 'invalid_json' } } });
    expect(await post('/v1/teleport', {})).toMatchObject({ status: 404 });
    const bad = await post('/v1/sale', { orderId: 'x', amount: 5, currency: 'JPY', card: { number: '4242abcd42424242', expMonth: 1, expYear: 2030, brand: 'visa' } });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(bad.body.error.message).toContain('card.number');
    expect(bad.body.error.message).not.toContain('4242');
    const noAmount = await post('/v1/sale', { orderId: 'x', currency: 'JPY', card: { number: '4242424242424242', expMonth: 1, expYear: 2030, brand: 'visa' } });
    expect(noAmount.body.error.message).toMatch(/amount/);
  });

  it('a client retries a refused connection with the same key, then reports the gateway unreachable at the deadline', async () => {
    const clock = new FakeClock();
    const gateway = new SandboxHttpGateway({ url: 'http://127.0.0.1:9', clock, retryDelayMs: 1_000 });
    let settled: GatewayResult | undefined;
    const pending = gateway.sale({ orderId: 'o-down', amount: 1, currency: 'JPY', card: card('4242424242424242') }, { ...key(), timeoutMs: 5_000 }).then((r) => (settled = keep(r)));
    for (let i = 0; i < 100 && settled === undefined; i++) {
      await new Promise((r) => setTimeout(r, 2));
      clock.advance(500);
    }
    await pending;
    expect(settled).toMatchObject({ status: 'error', reason: 'gateway-unavailable' });
  });
});
