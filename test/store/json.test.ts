import { describe, expect, it } from 'vitest';
import { CardDigits } from '../../src/payments/digits.ts';
import { StoreInputError } from '../../src/store/errors.ts';
import { canonicalJson, isFieldCount, isForbiddenField, toJsonObject } from '../../src/store/json.ts';

describe('canonicalJson (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units at every depth, with no whitespace', () => {
    // RFC 8785 §3.2.3's sorting example, keys only
    const value = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    // (read back with a regex: JSON.parse would put the integer-like key '1' first again)
    const keys = [...canonicalJson(value).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((m) => JSON.parse(`"${m[1]!}"`) as string);
    expect(keys).toEqual(['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
    expect(canonicalJson({ b: [3, { d: null, c: true }], a: 'x' })).toBe('{"a":"x","b":[3,{"c":true,"d":null}]}');
  });

  it('writes numbers as ECMAScript does (RFC 8785 §3.2.2.3)', () => {
    expect(canonicalJson([1e21, 1e-7, 0.1, -0, 333333333.3333333, 5500])).toBe('[1e+21,1e-7,0.1,0,333333333.3333333,5500]');
  });
});

describe('toJsonObject', () => {
  it("passes a value through JSON's rules: undefined fields go, CardDigits is masked", () => {
    expect(toJsonObject('x', { a: undefined, b: 1, masked: CardDigits.of('4111111111111111') })).toEqual({ b: 1, masked: '[card digits: 16]' });
  });

  it('refuses what is not a JSON object', () => {
    expect(() => toJsonObject('x', [])).toThrow(StoreInputError);
    expect(() => toJsonObject('x', { n: 1n })).toThrow(StoreInputError);
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    expect(() => toJsonObject('x', cycle)).toThrow(StoreInputError);
  });

  it.each(['pan', 'PAN', 'cardNumber', 'card_number', 'card-number', 'PaymentCardNumber', 'cvv', 'CVV2', 'cvc', 'securityCode', 'security_code', 'expiry', 'expirationDate', 'track2', 'pin', 'password', 'secret', 'Authorization'])('%s is a forbidden field name', (name) => {
    expect(isForbiddenField(name)).toBe(true);
  });

  it.each(['panel', 'last4', 'brand', 'masked', 'token', 'field', 'entered', 'expected', 'status'])('%s is allowed', (name) => {
    expect(isForbiddenField(name)).toBe(false);
  });

  it("allows a capture field's name over its count, and nothing else under it", () => {
    expect(isFieldCount({ entered: 3, expected: 3 })).toBe(true);
    expect(isFieldCount({ entered: 16, expected: 16, valid: true })).toBe(true);
    expect(isFieldCount({ entered: 20, expected: 16 })).toBe(false);
    expect(isFieldCount({ entered: 1.5, expected: 3 })).toBe(false);
    expect(isFieldCount({ entered: 3 })).toBe(false);
    expect(isFieldCount({ entered: 3, expected: 3, value: '737' })).toBe(false);
    expect(isFieldCount('737')).toBe(false);
    expect(toJsonObject('p', { 'security-code': { entered: 3, expected: 3 } })).toEqual({ 'security-code': { entered: 3, expected: 3 } });
    expect(() => toJsonObject('p', { 'security-code': { entered: 3, expected: 3, valid: 'yes' } })).toThrow(StoreInputError);
  });
});
