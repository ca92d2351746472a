import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock, type TimerHandle } from '../../src/clock.ts';
import { InvalidStateError } from '../../src/errors.ts';
import type { CardBrand } from '../../src/payments/card.ts';
import { CardDigits } from '../../src/payments/digits.ts';
import type { CallOptions, CardInput, Gateway, GatewayResult, PaymentMethod } from '../../src/payments/gateway.ts';
import { classifyGmoError, GMO_MAX_ATTEMPTS, GmoPgGateway, parseGmoResponse } from '../../src/payments/gmo.ts';
import { DEBIT_ISSUER_NAME, encodeWindows31J, FakeGmo, type RecordedRequest } from '../support/fakeGmo.ts';

/** A FakeClock that tells when timers are set, so a test can wait for a retry pause to begin. */
class WatchedClock extends FakeClock {
  created = 0;
  readonly #waiters: { count: number; resolve: () => void }[] = [];

  override setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = super.setTimeout(callback, ms);
    this.created++;
    for (const w of [...this.#waiters]) {
      if (this.created >= w.count) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return handle;
  }

  /** Resolves once `count` timers have been set in all. */
  timers(count: number): Promise<void> {
    if (this.created >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }
}

const RETRY_MS = 1_000;
const VISA = '4242424242424242';
const MASTERCARD = '5555555555554444';
const AMEX = '378282246310005';
const DEBIT = '4000056655665556';
const FUTURE = { month: 12, year: 2030 };
/** Before the FakeClock's 2026-11-21. */
const PAST = { month: 10, year: 2026 };

// Every result, thrown error and fake request record of every test, for the card-data check.
const evidence: unknown[] = [];
const pans = new Set<string>();
const codes = new Set<string>();

/** A test card; `securityCode` null for a card taken without one. */
function card(pan: string, securityCode: string | null = '737', brand: CardBrand = 'visa', expiry = FUTURE): CardInput {
  pans.add(pan);
  if (securityCode !== null) codes.add(securityCode);
  return { pan: CardDigits.of(pan), ...(securityCode !== null ? { securityCode: CardDigits.of(securityCode) } : {}), expiry, brand };
}

const opts = (idempotencyKey: string, timeoutMs?: number): CallOptions => ({ idempotencyKey, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });

function errorJson(err: unknown): unknown {
  return err instanceof Error ? { ...err, name: err.name, message: err.message, stack: err.stack } : err;
}

/** The gateway, with every result and thrown error kept as evidence. */
function recorded(inner: Gateway): Gateway {
  const wrap =
    <A>(method: (request: A, options: CallOptions) => Promise<GatewayResult>) =>
    async (request: A, options: CallOptions): Promise<GatewayResult> => {
      try {
        const result = await method.call(inner, request, options);
        evidence.push(result);
        return result;
      } catch (err) {
        evidence.push(errorJson(err));
        throw err;
      }
    };
  return {
    name: inner.name,
    authorize: wrap(inner.authorize),
    capture: wrap(inner.capture),
    sale: wrap(inner.sale),
    verify: wrap(inner.verify),
    storeCard: wrap(inner.storeCard),
    chargeStored: wrap(inner.chargeStored),
    void: wrap(inner.void),
    refund: wrap(inner.refund),
    close: () => inner.close(),
  };
}

/** Card digits found in a JSON text: whole PANs anywhere, security codes as whole tokens. */
function cardDataIn(json: string): string[] {
  const hits: string[] = [];
  for (const pan of pans) if (json.includes(pan)) hits.push(pan);
  for (const code of codes) if (new RegExp(`(?<![0-9A-Za-z])${code}(?![0-9A-Za-z])`).test(json)) hits.push(code);
  return hits;
}

let clock: WatchedClock;
let fake: FakeGmo;
let gw: Gateway;
const records: RecordedRequest[][] = [];

function gateway(overrides: Partial<ConstructorParameters<typeof GmoPgGateway>[0]> = {}): Gateway {
  return recorded(new GmoPgGateway({ baseUrl: fake.url, shopId: fake.shopId, shopPass: fake.shopPass, siteId: fake.siteId, sitePass: fake.sitePass, clock, retryDelayMs: RETRY_MS, ...overrides }));
}

beforeEach(async () => {
  clock = new WatchedClock();
  fake = new FakeGmo({ wallMs: () => clock.wallMs() });
  await fake.start();
  gw = gateway();
});

afterEach(async () => {
  await gw.close();
  await fake.close();
  records.push(fake.requests);
  evidence.push(fake.requests);
  // every deadline and pause was cleared
  expect(clock.pending).toBe(0);
});

describe('GMO-PG adapter: charges', () => {
  it('a sale registers the order (JobCd=CAPTURE) and executes it with the card: approved, with the approval number and a reference', async () => {
    const r = await gw.sale({ orderId: 'ord-sale-1', amount: 1200, currency: 'JPY', card: card(VISA) }, opts('key-sale-1'));
    const t = fake.transactions.get('ord-sale-1')!;
    expect(r).toMatchObject({
      gateway: 'gmo-pg',
      operation: 'sale',
      status: 'approved',
      resultCode: 'OK',
      transactionId: 'ord-sale-1',
      approvalNumber: t.approve,
      transactionRef: `${t.accessId}:${t.accessPass}:1200`,
      brand: 'visa',
      last4: '4242',
      amount: 1200,
      currency: 'JPY',
      requestedAt: '2026-11-21T00:00:00.000Z',
      respondedAt: '2026-11-21T00:00:00.000Z',
    });
    expect(r.reason).toBeUndefined();
    expect(r.approvalNumber).toMatch(/^\d{7}$/);
    expect(t.status).toBe('CAPTURE');
    expect(fake.last('EntryTran')!.params).toEqual({ ShopID: fake.shopId, ShopPass: fake.shopPass, OrderID: 'ord-sale-1', JobCd: 'CAPTURE', Amount: '1200' });
    const exec = fake.last('ExecTran')!.params;
    expect(exec).toEqual({
      AccessID: t.accessId,
      AccessPass: t.accessPass,
      OrderID: 'ord-sale-1',
      Method: '1',
      CardNo: '[card number: 16 digits]',
      Expire: '3012',
      SecurityCode: '[security code: 3 digits]',
      ClientField1: 'key-sale-1',
      ClientFieldFlag: '1',
    });
  });

  it('an authorization is registered with JobCd=AUTH and left uncaptured', async () => {
    const r = await gw.authorize({ orderId: 'ord-auth-1', amount: 5400, currency: 'jpy', card: card(MASTERCARD, '123', 'mastercard') }, opts('key-auth-1'));
    const t = fake.transactions.get('ord-auth-1')!;
    expect(r).toMatchObject({ operation: 'authorize', status: 'approved', approvalNumber: t.approve, transactionRef: `${t.accessId}:${t.accessPass}:5400`, brand: 'mastercard', last4: '4444' });
    expect(fake.last('EntryTran')!.params.JobCd).toBe('AUTH');
    expect(t.status).toBe('AUTH');
  });

  it('a card without a security code is executed without SecurityCode; an Amex sends its 4 digits', async () => {
    await gw.sale({ orderId: 'ord-nocvc', amount: 800, currency: 'JPY', card: card(VISA, null) }, opts('key-nocvc'));
    expect(fake.last('ExecTran')!.params).not.toHaveProperty('SecurityCode');
    const r = await gw.sale({ orderId: 'ord-amex', amount: 800, currency: 'JPY', card: card(AMEX, '4571', 'amex') }, opts('key-amex'));
    expect(r).toMatchObject({ status: 'approved', brand: 'amex', last4: '0005' });
    expect(fake.last('ExecTran')!.params).toMatchObject({ CardNo: '[card number: 15 digits]', SecurityCode: '[security code: 4 digits]' });
  });

  it('verify runs a CHECK: EntryTran without Amount, ExecTran without Method, no reference to capture', async () => {
    const r = await gw.verify({ orderId: 'ord-check-1', card: card(VISA) }, opts('key-check-1'));
    expect(r).toMatchObject({ operation: 'verify', status: 'approved', transactionId: 'ord-check-1', last4: '4242' });
    expect(r.transactionRef).toBeUndefined();
    expect(fake.last('EntryTran')!.params).not.toHaveProperty('Amount');
    expect(fake.last('EntryTran')!.params.JobCd).toBe('CHECK');
    expect(fake.last('ExecTran')!.params).not.toHaveProperty('Method');
    expect(fake.transactions.get('ord-check-1')!.status).toBe('CHECK');
  });

  it.each<[string, PaymentMethod, string, string | undefined]>([
    ['lump', { kind: 'lump' }, '1', undefined],
    ['installments of 6', { kind: 'installments', count: 6 }, '2', '6'],
    ['bonus lump', { kind: 'bonus-lump' }, '3', undefined],
    ['revolving', { kind: 'revolving' }, '5', undefined],
  ])('%s reaches the wire as Method %s', async (_, method, wireMethod, payTimes) => {
    const orderId = `ord-method-${wireMethod}`;
    const r = await gw.sale({ orderId, amount: 30000, currency: 'JPY', method, card: card(VISA) }, opts(`key-${orderId}`));
    expect(r.status).toBe('approved');
    const exec = fake.last('ExecTran')!.params;
    expect(exec.Method).toBe(wireMethod);
    expect(exec.PayTimes).toBe(payTimes);
    expect(fake.transactions.get(orderId)).toMatchObject({ method: wireMethod });
  });

  it('a payment in a currency other than yen, a bad order ID or one installment is refused before anything is sent', async () => {
    const usd = await gw.sale({ orderId: 'ord-usd', amount: 1000, currency: 'USD', card: card(VISA) }, opts('key-usd'));
    const bad = await gw.sale({ orderId: 'ord_with_underscore', amount: 1000, currency: 'JPY', card: card(VISA) }, opts('key-bad'));
    const one = await gw.sale({ orderId: 'ord-one', amount: 1000, currency: 'JPY', method: { kind: 'installments', count: 1 }, card: card(VISA) }, opts('key-one'));
    expect([usd, bad, one].map((r) => [r.status, r.reason, r.resultCode, r.detailCode])).toEqual([
      ['error', 'invalid-request', 'NOT_SENT', 'unsupported-currency'],
      ['error', 'invalid-request', 'NOT_SENT', 'invalid-order-id'],
      ['error', 'invalid-request', 'NOT_SENT', 'invalid-method'],
    ]);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('GMO-PG adapter: capture, void and refund (AlterTran)', () => {
  const authorize = (orderId: string, amount = 5000): Promise<GatewayResult> => gw.authorize({ orderId, amount, currency: 'JPY', card: card(VISA) }, opts(`key-${orderId}`));

  it('captures an authorization with JobCd=SALES and the authorized amount', async () => {
    const auth = await authorize('ord-cap-1');
    const r = await gw.capture({ orderId: 'ord-cap-1', transactionRef: auth.transactionRef! }, opts('key-cap-1'));
    const t = fake.transactions.get('ord-cap-1')!;
    expect(r).toMatchObject({ operation: 'capture', status: 'approved', transactionId: 'ord-cap-1', transactionRef: auth.transactionRef, approvalNumber: t.approve, amount: 5000 });
    expect(fake.last('AlterTran')!.params).toEqual({ ShopID: fake.shopId, ShopPass: fake.shopPass, AccessID: t.accessId, AccessPass: t.accessPass, JobCd: 'SALES', Amount: '5000' });
    expect(t.status).toBe('SALES');
  });

  it('voids an authorization with JobCd=VOID', async () => {
    const auth = await authorize('ord-void-1');
    const r = await gw.void({ orderId: 'ord-void-1', transactionRef: auth.transactionRef! }, opts('key-void-1'));
    expect(r).toMatchObject({ operation: 'void', status: 'approved' });
    expect(fake.last('AlterTran')!.params.JobCd).toBe('VOID');
    expect(fake.last('AlterTran')!.params).not.toHaveProperty('Amount');
    expect(fake.transactions.get('ord-void-1')!.status).toBe('VOID');
  });

  it('refunds a sale in whole with JobCd=RETURN', async () => {
    const sale = await gw.sale({ orderId: 'ord-ret-1', amount: 2500, currency: 'JPY', card: card(VISA) }, opts('key-ret-sale'));
    const r = await gw.refund({ orderId: 'ord-ret-1', transactionRef: sale.transactionRef!, amount: 2500 }, opts('key-ret-1'));
    expect(r).toMatchObject({ operation: 'refund', status: 'approved', amount: 2500 });
    expect(fake.last('AlterTran')!.params.JobCd).toBe('RETURN');
    expect(fake.transactions.get('ord-ret-1')!.status).toBe('RETURN');
  });

  it('a partial capture or refund, or a reference it did not issue, is refused without calling GMO-PG', async () => {
    const auth = await authorize('ord-part-1');
    const partCapture = await gw.capture({ orderId: 'ord-part-1', transactionRef: auth.transactionRef!, amount: 4000 }, opts('key-part-cap'));
    const partRefund = await gw.refund({ orderId: 'ord-part-1', transactionRef: auth.transactionRef!, amount: 100 }, opts('key-part-ref'));
    const foreign = await gw.void({ orderId: 'ord-part-1', transactionRef: 'ch_3PAbCdEf' }, opts('key-foreign'));
    expect([partCapture, partRefund, foreign].map((r) => [r.status, r.reason, r.detailCode])).toEqual([
      ['error', 'invalid-request', 'partial-capture-unsupported'],
      ['error', 'invalid-request', 'partial-refund-unsupported'],
      ['error', 'invalid-request', 'invalid-reference'],
    ]);
    expect(partRefund.message).toContain('ChangeTran');
    expect(fake.count('AlterTran')).toBe(0);
    expect(fake.transactions.get('ord-part-1')!.status).toBe('AUTH');
  });

  it("GMO-PG's refusal of a state change (capturing a voided authorization) comes back with its code", async () => {
    const auth = await authorize('ord-state-1');
    await gw.void({ orderId: 'ord-state-1', transactionRef: auth.transactionRef! }, opts('key-state-void'));
    const r = await gw.capture({ orderId: 'ord-state-1', transactionRef: auth.transactionRef! }, opts('key-state-cap'));
    expect(r).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'E11', detailCode: 'E11010003', gatewayErrorCode: 'E11010003' });
    expect(fake.transactions.get('ord-state-1')!.status).toBe('VOID');
  });
});

describe('GMO-PG adapter: stored cards (SaveMember, SaveCard, member ExecTran)', () => {
  it('files a card under a new member and charges it by the token', async () => {
    const stored = await gw.storeCard({ memberId: 'mem-1001', card: card(VISA) }, opts('key-store-1'));
    expect(stored).toMatchObject({ operation: 'storeCard', status: 'approved', token: 'mem-1001:0', brand: 'visa', last4: '4242' });
    expect(fake.last('SaveMember')!.params).toEqual({ SiteID: fake.siteId, SitePass: fake.sitePass, MemberID: 'mem-1001' });
    expect(fake.last('SaveCard')!.params).toEqual({ SiteID: fake.siteId, SitePass: fake.sitePass, MemberID: 'mem-1001', SeqMode: '0', CardNo: '[card number: 16 digits]', Expire: '3012' });

    const r = await gw.chargeStored({ orderId: 'ord-stored-1', amount: 980, currency: 'JPY', token: stored.token! }, opts('key-stored-1'));
    const t = fake.transactions.get('ord-stored-1')!;
    expect(r).toMatchObject({ operation: 'chargeStored', status: 'approved', approvalNumber: t.approve, transactionRef: `${t.accessId}:${t.accessPass}:980`, token: 'mem-1001:0', amount: 980 });
    expect(fake.last('EntryTran')!.params.JobCd).toBe('CAPTURE');
    const exec = fake.last('ExecTran')!.params;
    expect(exec).toMatchObject({ SiteID: fake.siteId, SitePass: fake.sitePass, MemberID: 'mem-1001', SeqMode: '0', CardSeq: '0', Method: '1' });
    expect(exec).not.toHaveProperty('CardNo');
    expect(t).toMatchObject({ status: 'CAPTURE', memberId: 'mem-1001' });
  });

  it('a second card for the same member passes through "member already exists" (E01390010) and gets the next sequence', async () => {
    await gw.storeCard({ memberId: 'mem-2002', card: card(VISA) }, opts('key-store-a'));
    const second = await gw.storeCard({ memberId: 'mem-2002', card: card(MASTERCARD, '123', 'mastercard') }, opts('key-store-b'));
    expect(second).toMatchObject({ status: 'approved', token: 'mem-2002:1', last4: '4444' });
    expect(fake.count('SaveMember')).toBe(2);
    expect(fake.count('SaveCard')).toBe(2);
    const r = await gw.chargeStored({ orderId: 'ord-stored-2', amount: 500, currency: 'JPY', token: second.token!, method: { kind: 'installments', count: 3 } }, opts('key-stored-2'));
    expect(r.status).toBe('approved');
    expect(fake.last('ExecTran')!.params).toMatchObject({ CardSeq: '1', Method: '2', PayTimes: '3' });
  });

  it('a stored card keeps its issuer answer: filed fine, declined for funds when charged', async () => {
    const stored = await gw.storeCard({ memberId: 'mem-3003', card: card('4000000000009995') }, opts('key-store-nsf'));
    expect(stored.status).toBe('approved');
    const r = await gw.chargeStored({ orderId: 'ord-stored-nsf', amount: 500, currency: 'JPY', token: stored.token! }, opts('key-stored-nsf'));
    expect(r).toMatchObject({ status: 'declined', reason: 'insufficient-funds', resultCode: '42G', detailCode: '42G020000' });
  });

  it("SaveCard's validity check declines an expired card: no token", async () => {
    const r = await gw.storeCard({ memberId: 'mem-4004', card: card(VISA, '737', 'visa', PAST) }, opts('key-store-exp'));
    expect(r).toMatchObject({ status: 'declined', reason: 'expired-card', detailCode: '42G830000' });
    expect(r.token).toBeUndefined();
  });

  it('a member ID without a token, a foreign token, or no site configured is refused before anything is sent', async () => {
    const noToken = await gw.chargeStored({ orderId: 'ord-nt', amount: 500, currency: 'JPY', memberId: 'mem-1' }, opts('key-nt'));
    const foreign = await gw.chargeStored({ orderId: 'ord-ft', amount: 500, currency: 'JPY', token: 'pm_1Abc' }, opts('key-ft'));
    const noSite = recorded(new GmoPgGateway({ baseUrl: fake.url, shopId: fake.shopId, shopPass: fake.shopPass, clock }));
    const unconfigured = await noSite.storeCard({ memberId: 'mem-1', card: card(VISA) }, opts('key-ns'));
    await noSite.close();
    expect([noToken, foreign, unconfigured].map((r) => [r.status, r.reason, r.detailCode])).toEqual([
      ['error', 'invalid-request', 'token-required'],
      ['error', 'invalid-request', 'token-required'],
      ['error', 'invalid-request', 'site-not-configured'],
    ]);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('GMO-PG adapter: declines and errors keep the gateway codes', () => {
  it.each<[string, string, string, string, string]>([
    ['4000000000009995', 'declined', 'insufficient-funds', '42G', '42G020000'],
    ['4000000000000002', 'declined', 'card-declined', '42G', '42G550000'],
    ['4000000000000069', 'declined', 'expired-card', '42G', '42G830000'],
    ['4000000000000127', 'declined', 'incorrect-security-code', '42G', '42G440000'],
    ['4000000000009987', 'declined', 'card-declined', '42G', '42G120000'],
    ['4242424242424241', 'declined', 'incorrect-number', '42G', '42G650000'],
    ['4000000000000119', 'error', 'processing-error', '42C', '42C010000'],
    ['4000000000000036', 'error', 'gateway-unavailable', 'E92', 'E92000001'],
  ])('card %s → %s %s (%s %s)', async (pan, status, reason, errCode, errInfo) => {
    const orderId = `ord-decl-${pan.slice(-6)}`;
    const r = await gw.sale({ orderId, amount: 1500, currency: 'JPY', card: card(pan) }, opts(`key-${orderId}`));
    expect(r).toMatchObject({ status, reason, resultCode: errCode, detailCode: errInfo, gatewayErrorCode: errInfo, transactionId: orderId, last4: pan.slice(-4) });
    expect(r.transactionRef).toBeUndefined();
    expect(r.approvalNumber).toBeUndefined();
    expect(r.message).toMatch(/^[A-Z][^\d]*\.$/); // plain words, no digits
    expect(fake.transactions.get(orderId)!.status).toBe('UNPROCESSED');
  });

  it('several errors at once stay whole (pipe-separated) and the first names the reason', async () => {
    const r = await gw.sale({ orderId: 'ord-multi', amount: 1500, currency: 'JPY', card: card('4000000000000127', '737', 'visa', PAST) }, opts('key-multi'));
    expect(r).toMatchObject({ status: 'declined', reason: 'expired-card', resultCode: '42G|42G', detailCode: '42G830000|42G440000', gatewayErrorCode: '42G830000|42G440000' });
  });

  it('a duplicate order ID is GMO-PG E01040010: invalid-request, saying the order is already registered, and nothing is executed', async () => {
    const first = await gw.sale({ orderId: 'ord-dup-1', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-dup-a'));
    const again = await gw.sale({ orderId: 'ord-dup-1', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-dup-b'));
    expect(first.status).toBe('approved');
    expect(again).toMatchObject({ status: 'error', reason: 'invalid-request', resultCode: 'E01', detailCode: 'E01040010' });
    expect(again.message).toContain('ord-dup-1');
    expect(again.message).toMatch(/already/);
    expect([fake.count('EntryTran'), fake.count('ExecTran')]).toEqual([2, 1]);
  });

  it('wrong shop credentials are an invalid request with GMO-PG’s code', async () => {
    const wrong = gateway({ shopPass: 'not-the-pass' });
    const r = await wrong.sale({ orderId: 'ord-cred', amount: 100, currency: 'JPY', card: card(VISA) }, opts('key-cred'));
    await wrong.close();
    expect(r).toMatchObject({ status: 'error', reason: 'invalid-request', detailCode: 'E01030002' });
    expect(fake.count('ExecTran')).toBe(0);
  });

  it.each<[string, string, string]>([
    ['42G040000', 'declined', 'insufficient-funds'],
    ['42G030000', 'declined', 'card-declined'],
    ['42G050000', 'declined', 'card-declined'],
    ['42G450000', 'declined', 'incorrect-security-code'],
    ['42G220000', 'declined', 'card-declined'],
    ['42G540000', 'declined', 'card-declined'],
    ['42G600000', 'declined', 'card-declined'],
    ['42G610000', 'declined', 'card-declined'],
    ['42G990000', 'declined', 'card-declined'],
    ['42C530000', 'error', 'processing-error'],
    ['E01170001', 'error', 'invalid-request'],
    ['E11010001', 'error', 'invalid-request'],
    ['E61010001', 'error', 'gateway-unavailable'],
    ['E91019999', 'error', 'gateway-unavailable'],
  ])('ErrInfo %s → %s %s', (errInfo, status, reason) => {
    expect(classifyGmoError(errInfo)).toMatchObject({ status, reason });
  });
});

describe('GMO-PG adapter: Windows-31J answers', () => {
  const sjis = (...parts: (string | number[])[]): Uint8Array => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

  it('decodes raw and percent-encoded Windows-31J values, + as space, and ignores a trailing newline', () => {
    // 日本語 = 93FA 967B 8CEA; ソ = 835C (trail byte is "\"); － = 817C (trail byte is "|")
    const body = sjis('ACS=0&Name=', [0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea, 0x83, 0x5c, 0x81, 0x7c], '&Escaped=%93%FA%96%7B&Plus=a+b%2Bc&Empty=&Approve=1234567\r\n');
    const fields = parseGmoResponse(body);
    expect(Object.fromEntries(fields)).toEqual({ ACS: '0', Name: '日本語ソ－', Escaped: '日本', Plus: 'a b+c', Empty: '', Approve: '1234567' });
  });

  it("the fake's answers are Windows-31J: a SaveCard answer's Japanese issuer name decodes, and the adapter reads the fields around it", async () => {
    expect([...encodeWindows31J('ＧＭＯ')]).toEqual([0x82, 0x66, 0x82, 0x6c, 0x82, 0x6e]);
    const stored = await gw.storeCard({ memberId: 'mem-debit', card: card(DEBIT) }, opts('key-debit'));
    expect(stored).toMatchObject({ status: 'approved', token: 'mem-debit:0', last4: '5556' });

    // the same API by hand, to look at the bytes themselves
    const response = await fetch(`${fake.url}SaveCard.idPass`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `SiteID=${fake.siteId}&SitePass=${fake.sitePass}&MemberID=mem-debit&CardNo=${DEBIT}&Expire=3012`,
    });
    expect(response.headers.get('content-type')).toBe('text/plain;charset=Windows-31J');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(Buffer.from(bytes).includes(encodeWindows31J(DEBIT_ISSUER_NAME))).toBe(true);
    const fields = parseGmoResponse(bytes);
    expect(fields.get('DebitPrepaidIssuerName')).toBe(DEBIT_ISSUER_NAME);
    expect(fields.get('CardSeq')).toBe('1');
    expect(fields.get('CardNo')).toBe('************5556');
    expect(fields.get('ForwardFinal')).toBe('2a99662');
  });

  it('a percent-encoded Windows-31J ClientField sent to the fake comes back raw and decodes the same', async () => {
    const entry = parseGmoResponse(new Uint8Array(await (await fetch(`${fake.url}EntryTran.idPass`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `ShopID=${fake.shopId}&ShopPass=${fake.shopPass}&OrderID=ord-ja&JobCd=AUTH&Amount=100` })).arrayBuffer()));
    const escaped = [...encodeWindows31J('お客様ｶﾅ')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
    const exec = await fetch(`${fake.url}ExecTran.idPass`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `AccessID=${entry.get('AccessID')}&AccessPass=${entry.get('AccessPass')}&OrderID=ord-ja&Method=1&CardNo=${VISA}&Expire=3012&ClientField2=${escaped}&ClientFieldFlag=1`,
    });
    const bytes = Buffer.from(await exec.arrayBuffer());
    expect(bytes.includes(encodeWindows31J('ClientField2=お客様ｶﾅ'))).toBe(true);
    expect(parseGmoResponse(bytes).get('ClientField2')).toBe('お客様ｶﾅ');
    expect(fake.transactions.get('ord-ja')!.status).toBe('AUTH');
  });
});

describe('GMO-PG adapter: timeouts, lost connections and the retry rule', () => {
  it('a timeout on ExecTran is error/timeout, asks for reconciliation by order ID, and ExecTran is not sent again', async () => {
    const held = fake.holdNext('ExecTran');
    const pending = gw.sale({ orderId: 'ord-slow-exec', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-slow-exec', 5_000));
    await held;
    clock.advance(5_000);
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'timeout', resultCode: 'ERROR', detailCode: 'ExecTran:timeout', transactionId: 'ord-slow-exec', requestedAt: '2026-11-21T00:00:00.000Z', respondedAt: '2026-11-21T00:00:05.000Z' });
    expect(r.message).toContain('may or may not have gone through');
    expect(r.message).toContain('reconciled');
    expect(r.message).toContain('ord-slow-exec');
    expect(r.transactionRef).toBeUndefined();
    clock.advance(60_000);
    expect([fake.count('EntryTran'), fake.count('ExecTran')]).toEqual([1, 1]);
    expect(clock.created).toBe(1); // the deadline, and no retry pause
  });

  it('a timeout on EntryTran is error/timeout, and says no charge was made', async () => {
    const held = fake.holdNext('EntryTran');
    const pending = gw.authorize({ orderId: 'ord-slow-entry', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-slow-entry', 8_000));
    await held;
    clock.advance(7_999);
    clock.advance(1);
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'EntryTran:timeout', respondedAt: '2026-11-21T00:00:08.000Z' });
    expect(r.message).toContain('No charge was made');
    expect(fake.count('ExecTran')).toBe(0);
  });

  it('a connection cut during the ExecTran answer is gateway-unavailable, not retried, and asks for reconciliation', async () => {
    fake.dropNext('ExecTran');
    const r = await gw.sale({ orderId: 'ord-cut-exec', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-cut-exec'));
    expect(r).toMatchObject({ status: 'error', reason: 'gateway-unavailable', detailCode: 'ExecTran:connection-lost' });
    expect(r.message).toContain('ord-cut-exec');
    expect(r.message).toContain('may or may not have gone through');
    expect(fake.count('ExecTran')).toBe(1);
    // the fake charged: exactly why the adapter must not send it again
    expect(fake.transactions.get('ord-cut-exec')!.status).toBe('CAPTURE');
  });

  it('a connection cut during an AlterTran answer is not retried either', async () => {
    const auth = await gw.authorize({ orderId: 'ord-cut-alter', amount: 700, currency: 'JPY', card: card(VISA) }, opts('key-cut-alter-a'));
    fake.dropNext('AlterTran');
    const r = await gw.capture({ orderId: 'ord-cut-alter', transactionRef: auth.transactionRef! }, opts('key-cut-alter-c'));
    expect(r).toMatchObject({ status: 'error', reason: 'gateway-unavailable', detailCode: 'AlterTran:connection-lost' });
    expect(r.message).toContain('the capture may or may not have gone through');
    expect(fake.count('AlterTran')).toBe(1);
  });

  it('a refused EntryTran is sent again after the pause on the injected clock, and then succeeds', async () => {
    await fake.stop();
    const pending = gw.sale({ orderId: 'ord-refused-1', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-refused-1', 10_000));
    await clock.timers(2); // the deadline, then the pause after the refused attempt
    expect(fake.count('EntryTran')).toBe(0);
    await fake.start();
    clock.advance(RETRY_MS - 1);
    expect(fake.count('EntryTran')).toBe(0);
    clock.advance(1);
    const r = await pending;
    expect(r).toMatchObject({ status: 'approved', transactionId: 'ord-refused-1', respondedAt: '2026-11-21T00:00:01.000Z' });
    expect([fake.count('EntryTran'), fake.count('ExecTran')]).toEqual([1, 1]);
    expect(clock.created).toBe(2);
  });

  it(`a refused EntryTran gives up after ${GMO_MAX_ATTEMPTS} attempts: gateway-unavailable, no charge`, async () => {
    await fake.stop();
    const pending = gw.sale({ orderId: 'ord-refused-2', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-refused-2', 30_000));
    for (let pauseNo = 1; pauseNo < GMO_MAX_ATTEMPTS; pauseNo++) {
      await clock.timers(1 + pauseNo);
      clock.advance(RETRY_MS);
    }
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'gateway-unavailable', detailCode: 'EntryTran:connection-refused' });
    expect(r.message).toContain(`${GMO_MAX_ATTEMPTS} attempts`);
    expect(r.message).toContain('No charge was made');
    expect(clock.created).toBe(GMO_MAX_ATTEMPTS); // the deadline and one pause between each pair of attempts
  });

  it('the deadline ends the retries: a deadline that passes during a pause is a timeout', async () => {
    await fake.stop();
    const pending = gw.sale({ orderId: 'ord-refused-3', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-refused-3', 1_500));
    await clock.timers(2);
    clock.advance(RETRY_MS);
    await clock.timers(3);
    clock.advance(RETRY_MS / 2); // to the deadline, before the second pause ends
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'EntryTran:timeout', respondedAt: '2026-11-21T00:00:01.500Z' });
  });

  it('a refused ExecTran is not sent again: gateway-unavailable, and it says no money moved', async () => {
    fake.stopAfter('EntryTran');
    const r = await gw.sale({ orderId: 'ord-refused-exec', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-refused-exec'));
    expect(r).toMatchObject({ status: 'error', reason: 'gateway-unavailable', detailCode: 'ExecTran:connection-refused' });
    expect(r.message).toContain('no money moved');
    expect(r.message).toContain('1 attempt');
    expect([fake.count('EntryTran'), fake.count('ExecTran')]).toEqual([1, 0]);
    expect(clock.created).toBe(1); // no pause: no retry
    expect(fake.transactions.get('ord-refused-exec')!.status).toBe('UNPROCESSED');
  });

  it('the caller aborting mid-ExecTran ends the call as a timeout that asks for reconciliation', async () => {
    const held = fake.holdNext('ExecTran');
    const controller = new AbortController();
    const pending = gw.sale({ orderId: 'ord-abort', amount: 1500, currency: 'JPY', card: card(VISA) }, { idempotencyKey: 'key-abort', signal: controller.signal });
    await held;
    controller.abort();
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'timeout', detailCode: 'ExecTran:aborted' });
    expect(r.message).toContain('ord-abort');
  });
});

describe('GMO-PG adapter: lifecycle and card data', () => {
  it('close() is idempotent, ends a call in flight (asking for reconciliation) and refuses new calls', async () => {
    const held = fake.holdNext('ExecTran');
    const pending = gw.sale({ orderId: 'ord-close', amount: 1500, currency: 'JPY', card: card(VISA) }, opts('key-close'));
    await held;
    await gw.close();
    await gw.close();
    const r = await pending;
    expect(r).toMatchObject({ status: 'error', reason: 'gateway-unavailable', detailCode: 'ExecTran:closed' });
    expect(r.message).toContain('ord-close');
    await expect(gw.sale({ orderId: 'ord-after', amount: 1, currency: 'JPY', card: card(VISA) }, opts('key-after'))).rejects.toBeInstanceOf(InvalidStateError);
  });

  it('a wiped card is a programming mistake: it throws before anything reaches GMO-PG', async () => {
    const wipedPan = card(VISA);
    wipedPan.pan.wipe();
    const wipedCode = card(VISA);
    wipedCode.securityCode!.wipe();
    await expect(gw.sale({ orderId: 'ord-wiped-1', amount: 100, currency: 'JPY', card: wipedPan }, opts('key-wiped-1'))).rejects.toBeInstanceOf(InvalidStateError);
    await expect(gw.storeCard({ memberId: 'mem-wiped', card: wipedCode }, opts('key-wiped-2'))).rejects.toBeInstanceOf(InvalidStateError);
    expect(fake.requests).toHaveLength(0);
  });

  it('refuses a configuration without a URL or shop credentials', () => {
    expect(() => new GmoPgGateway({ baseUrl: 'not a url', shopId: 's', shopPass: 'p', clock })).toThrow(/baseUrl/);
    expect(() => new GmoPgGateway({ baseUrl: fake.url, shopId: '', shopPass: 'p', clock })).toThrow(/shopId/);
    expect(() => new GmoPgGateway({ baseUrl: fake.url, shopId: 's', shopPass: 'p', siteId: 'x', clock })).toThrow(/siteId/);
  });
});

describe('card data (runs last: it reads what every test above left behind)', () => {
  it('the check finds card digits where they are', () => {
    expect(cardDataIn(JSON.stringify({ body: `CardNo=${VISA}&SecurityCode=737` }))).toEqual([VISA, '737']);
    expect(cardDataIn(JSON.stringify({ ref: 'a737b:1737' }))).toEqual([]);
  });

  it('no PAN or security code in any result, thrown error or request the fake recorded', () => {
    const results = evidence.filter((e) => typeof e === 'object' && e !== null && 'gateway' in e);
    expect(results.length).toBeGreaterThan(40);
    expect(evidence.some((e) => typeof e === 'object' && e !== null && 'name' in e && (e as { name: string }).name === 'InvalidStateError')).toBe(true);
    const requests = records.flat();
    expect(requests.filter((r) => r.params.CardNo !== undefined).length).toBeGreaterThan(30);
    // the fake's record proves the adapter sent a card number, and holds only its marker
    for (const r of requests) {
      if (r.params.CardNo !== undefined) expect(r.params.CardNo).toMatch(/^\[card number: \d+ digits\]$/);
      if (r.params.SecurityCode !== undefined) expect(r.params.SecurityCode).toMatch(/^\[security code: \d digits\]$/);
    }
    expect(pans.size).toBeGreaterThan(10);
    for (const item of evidence) expect(cardDataIn(JSON.stringify(item)), JSON.stringify(item).slice(0, 200)).toEqual([]);
  });
});
