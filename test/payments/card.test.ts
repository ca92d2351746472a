import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../src/errors.ts';
import { brandOf, checkExpiry, checkPan, checkSecurityCode, CARD_BRANDS, holdsCardNumber, maskedPan, panComplete, securityCodeLength } from '../../src/payments/card.ts';
import { CardDigits } from '../../src/payments/digits.ts';

const digits = (s: string): CardDigits => CardDigits.of(s);
const ALL = [...CARD_BRANDS];

/** Luhn by the textbook, independent of CardDigits.luhnValid. */
function luhnReference(s: string): boolean {
  let sum = 0;
  [...s].reverse().forEach((c, i) => {
    const d = Number(c) * (i % 2 ? 2 : 1);
    sum += d > 9 ? d - 9 : d;
  });
  return s.length > 0 && sum % 10 === 0;
}

describe('CardDigits', () => {
  it('is immutable: with() and withoutLast() make new values', () => {
    const a = digits('42');
    const b = a.with(4);
    expect([a.length, b.length, b.withoutLast().length, CardDigits.EMPTY.withoutLast().length]).toEqual([2, 3, 2, 0]);
    expect(b.prefix(3)).toBe(424);
  });

  it('never shows its digits in string, JSON, template or inspect forms', () => {
    const pan = digits('4242424242424242');
    const forms = [String(pan), JSON.stringify({ pan }), `${pan}`, inspect(pan), inspect({ nested: { pan } })];
    for (const f of forms) {
      expect(f).not.toMatch(/4242/);
      expect(f).toContain('card digits: 16');
    }
  });

  it('reveals only to a callback, and refuses every use once wiped', () => {
    const pan = digits('4000000000009995');
    expect(pan.reveal((s) => s.length)).toBe(16);
    pan.wipe();
    expect(pan.wiped).toBe(true);
    expect(() => pan.reveal((s) => s)).toThrow(InvalidStateError);
    expect(() => pan.with(1)).toThrow(InvalidStateError);
    expect(() => pan.luhnValid()).toThrow(InvalidStateError);
    expect(String(pan)).toBe('[card digits: 16]');
    CardDigits.EMPTY.wipe(); // the shared empty value holds nothing and stays usable
    expect(CardDigits.EMPTY.with(4).length).toBe(1);
  });

  it('agrees with a textbook Luhn on 2,000 numbers', () => {
    let seed = 3;
    for (let i = 0; i < 2000; i++) {
      const length = 12 + (i % 8);
      const s = Array.from({ length }, () => String((seed = (seed * 1103515245 + 12345) >>> 0) % 10)).join('');
      expect(digits(s).luhnValid(), s.length.toString()).toBe(luhnReference(s));
    }
  });

  it('takes at most 19 digits 0–9', () => {
    expect(() => digits('1'.repeat(19)).with(1)).toThrow(RangeError);
    expect(() => digits('12').with(10)).toThrow(RangeError);
    expect(() => CardDigits.of('12a')).toThrow(RangeError);
  });
});

describe('brand from the BIN', () => {
  it.each([
    ['4242424242424242', 'visa'],
    ['5555555555554444', 'mastercard'],
    ['2221000000000009', 'mastercard'],
    ['2720999999999996', 'mastercard'],
    ['378282246310005', 'amex'],
    ['371449635398431', 'amex'],
    ['3530111333300000', 'jcb'],
    ['3566002020360505', 'jcb'],
    ['30569309025904', 'diners'],
    ['36227206271667', 'diners'],
    ['6011111111111117', 'discover'],
    ['6445644564456445', 'discover'],
    ['6200000000000005', 'unionpay'],
  ])('%s is %s', (pan, brand) => {
    expect(brandOf(digits(pan))).toBe(brand);
  });

  it('is undecided while the digits could still grow into more than one brand, and known the moment they cannot', () => {
    expect(brandOf(digits('3'))).toBeUndefined(); // amex, jcb, diners
    expect(brandOf(digits('35'))).toBeUndefined(); // jcb only from 3528
    expect(brandOf(digits('352'))).toBeUndefined();
    expect(brandOf(digits('3528'))).toBe('jcb');
    expect(brandOf(digits('3527'))).toBe('unknown');
    expect(brandOf(digits('2'))).toBeUndefined();
    expect(brandOf(digits('2220'))).toBe('unknown'); // just below the 2-series
    expect(brandOf(digits('2721'))).toBe('unknown'); // just above it
    expect(brandOf(digits('4'))).toBe('visa');
    expect(brandOf(digits('9'))).toBeUndefined();
    expect(brandOf(digits('9999'))).toBe('unknown');
    expect(brandOf(CardDigits.EMPTY)).toBeUndefined();
  });
});

describe('card number field', () => {
  it('completes at the usual length when Luhn passes, else only at the longest length', () => {
    expect(panComplete(digits('424242424242424'))).toBe(false);
    expect(panComplete(digits('4242424242424242'))).toBe(true);
    expect(panComplete(digits('4242424242424241'))).toBe(false); // a typo: the caller can fix it with *
    expect(panComplete(digits('4242424242424241000'))).toBe(true); // Visa's longest, 19
    expect(panComplete(digits('378282246310005'))).toBe(true); // Amex 15
    expect(panComplete(digits('5555555555554443'))).toBe(true); // Mastercard has one length: complete, invalid
    expect(panComplete(digits('9'.repeat(18)))).toBe(false);
    expect(panComplete(digits('9'.repeat(19)))).toBe(true);
  });

  it('checks brand, acceptance, length and Luhn with Twilio’s error names', () => {
    expect(checkPan(digits('4242424242424242'), ALL)).toEqual({ ok: true, brand: 'visa' });
    expect(checkPan(digits('4242424242424241'), ALL)).toEqual({ ok: false, error: 'invalid-card-number' });
    expect(checkPan(digits('42424242424242'), ALL)).toEqual({ ok: false, error: 'invalid-card-number' });
    expect(checkPan(digits('378282246310005'), ['visa', 'mastercard'])).toEqual({ ok: false, error: 'invalid-card-type' });
    expect(checkPan(digits('9999999999999995'), ALL)).toEqual({ ok: false, error: 'invalid-card-type' });
    expect(checkPan(digits('4242'), ALL)).toEqual({ ok: false, error: 'invalid-card-number' });
  });

  it('shows only the last four, and only once the number is complete', () => {
    expect(maskedPan(digits('4242424242424242'), true)).toBe('•••• •••• •••• 4242');
    expect(maskedPan(digits('378282246310005'), true)).toBe('•••• •••• ••• 0005');
    expect(maskedPan(digits('424242424242'), false)).toBeUndefined();
  });
});

describe('expiry and security code', () => {
  // 2026-11-21, 00:00 UTC (09:00 in Japan)
  const today = Date.UTC(2026, 10, 21);

  it('takes MMYY from this month to 20 years ahead', () => {
    const mmyy = (s: string): number[] => [...s].map(Number);
    expect(checkExpiry(mmyy('1126'), today)).toEqual({ ok: true, expiry: { month: 11, year: 2026 } });
    expect(checkExpiry(mmyy('1026'), today)).toEqual({ ok: false, error: 'invalid-date' });
    expect(checkExpiry(mmyy('0127'), today)).toEqual({ ok: true, expiry: { month: 1, year: 2027 } });
    expect(checkExpiry(mmyy('1146'), today)).toEqual({ ok: true, expiry: { month: 11, year: 2046 } });
    expect(checkExpiry(mmyy('1246'), today)).toEqual({ ok: false, error: 'invalid-date' });
    expect(checkExpiry(mmyy('0027'), today)).toEqual({ ok: false, error: 'invalid-date' });
    expect(checkExpiry(mmyy('1327'), today)).toEqual({ ok: false, error: 'invalid-date' });
    expect(checkExpiry(mmyy('112'), today)).toEqual({ ok: false, error: 'invalid-date' });
  });

  it('reads the month in Japan: on 30 Nov 16:00 UTC it is already December there', () => {
    const lateNov = Date.UTC(2026, 10, 30, 16);
    expect(checkExpiry([1, 1, 2, 6], lateNov)).toEqual({ ok: false, error: 'invalid-date' });
  });

  it('wants 3 digits, or 4 for Amex', () => {
    expect([securityCodeLength('amex'), securityCodeLength('visa'), securityCodeLength(undefined)]).toEqual([4, 3, 3]);
    expect(checkSecurityCode(digits('123'), 'visa')).toEqual({ ok: true });
    expect(checkSecurityCode(digits('123'), 'amex')).toEqual({ ok: false, error: 'invalid-security-code' });
    expect(checkSecurityCode(digits('1234'), 'amex')).toEqual({ ok: true });
    expect(checkSecurityCode(digits('12'), 'jcb')).toEqual({ ok: false, error: 'invalid-security-code' });
  });
});

describe('a card number in merchant text', () => {
  it('is found when a 14–19 digit run starting 2–6 passes Luhn, spaced or not; timestamps and order numbers are not', () => {
    for (const t of ['4111111111111111', 'order-4111 1111 1111 1111', '4111-1111-1111-1111', '378282246310005', 'x30569309025904y']) expect(holdsCardNumber(t), t).toBe(true);
    for (const t of ['1700000000000', 'order-42', '4111111111111112', '12345678901234567890', '']) expect(holdsCardNumber(t), t).toBe(false);
  });
});
