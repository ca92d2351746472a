import { describe, expect, it } from 'vitest';
import type { PublicResult } from '../../src/payments/session.ts';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from '../../src/store/errors.ts';
import { type NewPayment, PAYMENT_CSV_COLUMNS, csvField, paymentsCsv } from '../../src/store/payments.ts';
import { openTempStore } from './support.ts';

const FIELDS = ['payment-card-number', 'expiration-date', 'security-code'];

function newPayment(overrides: Partial<NewPayment> = {}): NewPayment {
  return {
    id: 'pay_1',
    tenantId: 'shop',
    callId: 'call_1',
    agentUserId: 'usr_agent',
    operation: 'sale',
    amount: { value: 5500, currency: 'JPY' },
    method: { kind: 'installments', count: 3 },
    orderId: 'ORDER-0001',
    idempotencyKey: 'idem-1',
    fields: FIELDS,
    ...overrides,
  };
}

const APPROVED: PublicResult = {
  gateway: 'gmo-pg',
  operation: 'sale',
  status: 'approved',
  resultCode: 'OK',
  detailCode: '',
  message: '承認されました',
  transactionId: 'ORDER-0001',
  approvalNumber: '1234567',
  requestedAt: '2026-11-21T00:00:01.000Z',
  respondedAt: '2026-11-21T00:00:02.000Z',
  brand: 'visa',
  last4: '1111',
  amount: 5500,
  currency: 'JPY',
};

describe('PaymentRepository', () => {
  it('records a payment as asked, capturing', () => {
    const { store } = openTempStore();

    const payment = store.payments.create(newPayment());

    expect(payment).toEqual({
      id: 'pay_1',
      tenantId: 'shop',
      callId: 'call_1',
      agentUserId: 'usr_agent',
      operation: 'sale',
      amount: { value: 5500, currency: 'JPY' },
      method: { kind: 'installments', count: 3 },
      orderId: 'ORDER-0001',
      idempotencyKey: 'idem-1',
      fields: FIELDS,
      status: 'capturing',
      brand: null,
      last4: null,
      progress: {},
      result: null,
      failure: null,
      error: null,
      statusCallback: null,
      createdAt: '2026-11-21T00:00:00.000Z',
      updatedAt: '2026-11-21T00:00:00.000Z',
    });
    expect(store.payments.get('pay_1')).toEqual(payment);
  });

  it('returns the first payment for a repeated idempotency key, whatever else is asked', () => {
    const { store, clock } = openTempStore();
    const first = store.payments.create(newPayment());
    clock.advance(1000);

    const again = store.payments.create(newPayment({ id: 'pay_2', amount: { value: 1, currency: 'JPY' } }));

    expect(again).toEqual(first);
    expect(store.payments.get('pay_2')).toBeUndefined();
    expect(store.payments.byIdempotencyKey('shop', 'idem-1')).toEqual(first);
  });

  it('keeps idempotency keys per tenant, and refuses an id used under another key', () => {
    const { store } = openTempStore();
    store.payments.create(newPayment());

    const other = store.payments.create(newPayment({ id: 'pay_2', tenantId: 'other' }));

    expect(other.id).toBe('pay_2');
    expect(() => store.payments.create(newPayment({ idempotencyKey: 'idem-2' }))).toThrow(StoreConflictError);
  });

  it.each([
    { name: 'a fractional amount', input: { amount: { value: 1.5, currency: 'JPY' } } },
    { name: 'a lower-case currency', input: { amount: { value: 1, currency: 'jpy' } } },
    { name: 'an unknown operation', input: { operation: 'steal' as 'sale' } },
    { name: 'an unknown method', input: { method: { kind: 'credit' as 'lump' } } },
    { name: 'an empty idempotency key', input: { idempotencyKey: '' } },
    { name: 'an unknown status', input: { status: 'pending' as 'ready' } },
  ])('refuses $name', ({ input }) => {
    const { store } = openTempStore();
    expect(() => store.payments.create(newPayment(input))).toThrow(StoreInputError);
  });

  it('updates status, brand, last four, progress and the result; null clears', () => {
    const { store, clock } = openTempStore();
    store.payments.create(newPayment());
    clock.advance(2000);

    const updated = store.payments.update('pay_1', {
      status: 'approved',
      brand: 'visa',
      last4: '1111',
      progress: { 'payment-card-number': { entered: 16, expected: 16, valid: true }, 'security-code': { entered: 3, expected: 3 } },
      result: APPROVED,
    });

    expect(updated).toMatchObject({ status: 'approved', brand: 'visa', last4: '1111', result: APPROVED, updatedAt: '2026-11-21T00:00:02.000Z', createdAt: '2026-11-21T00:00:00.000Z' });
    expect(updated.progress).toEqual({ 'payment-card-number': { entered: 16, expected: 16, valid: true }, 'security-code': { entered: 3, expected: 3 } });
    const cleared = store.payments.update('pay_1', { brand: null, progress: null, result: null });
    expect(cleared).toMatchObject({ brand: null, progress: {}, result: null, last4: '1111' });
  });

  it.each([
    { name: 'last4 of 5 digits', changes: { last4: '11111' } },
    { name: 'last4 with a letter', changes: { last4: '111a' } },
    { name: 'a brand with digits', changes: { brand: '4111111111111111' } },
    { name: 'progress with text', changes: { progress: { 'payment-card-number': { entered: '4111' } } } },
    { name: 'progress with a big number', changes: { progress: { 'security-code': { entered: 737, expected: 3 } } } },
    { name: 'progress with a PAN as a number', changes: { progress: { 'payment-card-number': { entered: 4111111111111111, expected: 16 } } } },
    { name: 'progress with another key', changes: { progress: { 'security-code': { entered: 3, expected: 3, value: 1 } } } },
    { name: 'a result with a pan field', changes: { result: { ...APPROVED, pan: '4111111111111111' } as PublicResult } },
    { name: 'an unknown status', changes: { status: 'done' as 'approved' } },
  ])('refuses $name, and changes nothing', ({ changes }) => {
    const { store } = openTempStore();
    const before = store.payments.create(newPayment());

    expect(() => store.payments.update('pay_1', changes)).toThrow(StoreInputError);
    expect(store.payments.get('pay_1')).toEqual(before);
  });

  it('refuses to update a payment that does not exist', () => {
    const { store } = openTempStore();
    expect(() => store.payments.update('pay_nope', { status: 'cancelled' })).toThrow(StoreNotFoundError);
  });

  it('lists newest first, filtered by tenant, agent, status and time, with limit and offset', () => {
    const { store, clock } = openTempStore();
    const made: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = `pay_${i}`;
      store.payments.create(newPayment({ id, idempotencyKey: id, tenantId: i % 2 === 0 ? 'shop' : 'other', agentUserId: i < 3 ? 'usr_a' : 'usr_b' }));
      if (i === 4) store.payments.update(id, { status: 'declined' });
      made.push(id);
      clock.advance(3_600_000); // an hour apart: pay_0 at 00:00, pay_5 at 05:00
    }
    const ids = (list: { id: string }[]): string[] => list.map((p) => p.id);

    expect(ids(store.payments.list())).toEqual([...made].reverse());
    expect(ids(store.payments.list({ tenantId: 'shop' }))).toEqual(['pay_4', 'pay_2', 'pay_0']);
    expect(ids(store.payments.list({ agentUserId: 'usr_b' }))).toEqual(['pay_5', 'pay_4', 'pay_3']);
    expect(ids(store.payments.list({ status: 'declined' }))).toEqual(['pay_4']);
    expect(ids(store.payments.list({ from: '2026-11-21T02:00:00Z', to: '2026-11-21T13:00:00+09:00' }))).toEqual(['pay_3', 'pay_2']);
    expect(ids(store.payments.list({ from: '2026-11-22' }))).toEqual([]);
    expect(ids(store.payments.list({ limit: 2, offset: 1 }))).toEqual(['pay_4', 'pay_3']);
    expect(() => store.payments.list({ from: 'yesterday' })).toThrow(StoreInputError);
    expect(() => store.payments.list({ limit: 0 })).toThrow(StoreInputError);
    expect(() => store.payments.list({ limit: 10_001 })).toThrow(StoreInputError);
    expect(() => store.payments.list({ status: 'bogus' })).toThrow(StoreInputError);
  });
});

describe('payments CSV', () => {
  it('has Japanese column names for order systems, and English ones by default', () => {
    const ja = paymentsCsv([], { header: 'ja' });
    const en = paymentsCsv([]);

    expect(ja).toBe(`${PAYMENT_CSV_COLUMNS.map((c) => c.ja).join(',')}\r\n`);
    expect(ja.startsWith('決済ID,オーダーID（取引ID）,ステータス,結果コード,詳細コード,メッセージ,承認番号,')).toBe(true);
    expect(ja).toContain('カード番号下4桁');
    expect(en.startsWith('payment_id,order_id,status,result_code,detail_code,message,approval_number,gateway,')).toBe(true);
  });

  it('writes one CRLF row per payment, the gateway codes beside the status', () => {
    const { store } = openTempStore();
    store.payments.create(newPayment());
    const row = store.payments.update('pay_1', { status: 'approved', brand: 'visa', last4: '1111', result: APPROVED });

    const lines = store.payments.csv([row], { header: 'ja' }).split('\r\n');

    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    expect(lines[1]).toBe('pay_1,ORDER-0001,approved,OK,,承認されました,1234567,gmo-pg,,,5500,JPY,visa,1111,,2026-11-21T00:00:01.000Z,2026-11-21T00:00:02.000Z,2026-11-21T00:00:00.000Z');
  });

  it('quotes a field with a comma, a quote or a line break (RFC 4180), doubling quotes', () => {
    const { store } = openTempStore();
    store.payments.create(newPayment({ orderId: 'A,"B"\r\nC' }));
    const row = store.payments.update('pay_1', { status: 'declined', result: { ...APPROVED, status: 'declined', message: 'カードが使えません, "残高不足"', approvalNumber: '' } as PublicResult });

    const csv = store.payments.csv([row]);

    expect(csv).toContain('pay_1,"A,""B""\r\nC",declined,OK,,"カードが使えません, ""残高不足""",,');
    expect(csvField(null)).toBe('');
    expect(csvField(0)).toBe('0');
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a\nb')).toBe('"a\nb"');
    // formulas are not run by a spreadsheet opening the export
    expect(csvField('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvField('-1+2')).toBe("'-1+2");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField(-5)).toBe('-5');
  });
});
