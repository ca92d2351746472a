import { describe, expect, it } from 'vitest';
import { StoreInputError } from '../../src/store/errors.ts';
import { base32Decode, base32Encode, hotp, matchTotpStep, otpauthUri, totpCode } from '../../src/store/totp.ts';

describe('TOTP and base32', () => {
  // RFC 4648 §10
  it.each([
    ['', ''],
    ['f', 'MY'],
    ['fo', 'MZXQ'],
    ['foo', 'MZXW6'],
    ['foob', 'MZXW6YQ'],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI'],
  ])('base32 of %j is %s, and back', (plain, encoded) => {
    expect(base32Encode(Buffer.from(plain))).toBe(encoded);
    expect(base32Decode(encoded).toString()).toBe(plain);
  });

  it('refuses a character outside the base32 alphabet', () => {
    expect(() => base32Decode('MZXW1')).toThrow(StoreInputError);
  });

  // RFC 4226 Appendix D: HOTP values for the secret "12345678901234567890"
  it.each([
    [0, '755224'],
    [1, '287082'],
    [9, '520489'],
  ])('HOTP counter %d is %s', (counter, code) => {
    expect(hotp(Buffer.from('12345678901234567890'), counter)).toBe(code);
  });

  // RFC 6238 Appendix B (SHA-1), last 6 of the 8 digits
  it.each([
    [59, '287082'],
    [1111111109, '081804'],
    [2000000000, '279037'],
  ])('TOTP at %d s is %s', (seconds, code) => {
    const secret = base32Encode(Buffer.from('12345678901234567890'));
    expect(totpCode(secret, seconds * 1000)).toBe(code);
    expect(matchTotpStep(secret, code, seconds * 1000)).toBe(Math.floor(seconds / 30));
  });

  it('makes the otpauth URI authenticator apps scan', () => {
    const secret = base32Encode(Buffer.from('12345678901234567890'));
    expect(otpauthUri({ secret, account: '山田 admin' })).toBe(
      `otpauth://totp/hushpay:%E5%B1%B1%E7%94%B0%20admin?secret=${secret}&issuer=hushpay&algorithm=SHA1&digits=6&period=30`,
    );
  });
});
