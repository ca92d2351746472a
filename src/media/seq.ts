/**
 * Wrap-around arithmetic for RTP sequence numbers (16-bit) and timestamps (32-bit).
 *
 * RFC 3550 §5.1 (https://www.rfc-editor.org/rfc/rfc3550#section-5.1): "The initial value of the
 * sequence number SHOULD be random", and likewise the timestamp, so both wrap in ordinary calls:
 * a sequence number at 50 packets a second wraps every 22 minutes. Never compare them with `<`.
 *
 * Comparison is serial-number arithmetic (RFC 1982 §3.2): `a` is greater than `b` when the
 * shortest way round the circle from `b` to `a` is forwards. At exactly half the circle (a − b ≡
 * 2^15, or 2^31) RFC 1982 leaves the comparison undefined; here neither value is greater, and the
 * signed difference reports the negative end of the range (−32768, −2^31).
 *
 * Inputs are expected in range (0…0xffff, 0…0xffffffff); anything else is reduced modulo the range.
 */

/** Number of distinct sequence numbers; sequence numbers are 0 … UINT16_MODULUS − 1. */
export const UINT16_MODULUS = 0x1_0000;
/** Number of distinct RTP timestamps; timestamps are 0 … UINT32_MODULUS − 1. */
export const UINT32_MODULUS = 0x1_0000_0000;

/** (a + b) mod 2^16; `b` may be negative. */
export function uint16Add(a: number, b: number): number {
  return (a + b) & 0xffff;
}

/** The signed shortest distance a − b round the 16-bit circle, in [−32768, 32767]. */
export function uint16Diff(a: number, b: number): number {
  const forward = (a - b) & 0xffff;
  return forward >= 0x8000 ? forward - UINT16_MODULUS : forward;
}

/** RFC 1982 serial-number "a is after b" for 16-bit values; false both ways at half range. */
export function uint16Gt(a: number, b: number): boolean {
  return uint16Diff(a, b) > 0;
}

/** (a + b) mod 2^32; `b` may be negative. */
export function uint32Add(a: number, b: number): number {
  return (a + b) >>> 0;
}

/** The signed shortest distance a − b round the 32-bit circle, in [−2^31, 2^31 − 1]. */
export function uint32Diff(a: number, b: number): number {
  // ToInt32 reduces modulo 2^32 into the signed range, which is exactly the shortest distance.
  return (a - b) | 0;
}

/** RFC 1982 serial-number "a is after b" for 32-bit values; false both ways at half range. */
export function uint32Gt(a: number, b: number): boolean {
  return uint32Diff(a, b) > 0;
}
