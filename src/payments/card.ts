/**
 * Card rules: brand from the BIN, each brand's lengths and security-code length, the Luhn
 * check, expiry and security code. Pure functions of `CardDigits` and the calendar.
 *
 * Ranges after braintree/credit-card-type `card-types.ts` and CyberSource's identification
 * rules (../shared/reference/interfaces.md §3.7): Mastercard includes the 2-series
 * 2221–2720, JCB is 3528–3589, Amex has a 4-digit CID.
 *
 * Errors use Twilio `<Pay>`'s names, so integrators meet a vocabulary they know.
 */

import { type CardDigits, luhnValid } from './digits.ts';

export const CARD_BRANDS = ['visa', 'mastercard', 'amex', 'jcb', 'diners', 'discover', 'unionpay'] as const;
export type CardBrand = (typeof CARD_BRANDS)[number];

/** Twilio `<Pay>` errorType names (interfaces.md §2.4) for what a caller can get wrong. */
export type CaptureErrorType = 'invalid-card-number' | 'invalid-card-type' | 'invalid-date' | 'invalid-security-code' | 'timeout';

interface BinRange {
  /** Digits of the prefix this range is written in. */
  readonly digits: number;
  readonly from: number;
  readonly to: number;
}

export interface BrandRule {
  readonly brand: CardBrand;
  readonly ranges: readonly BinRange[];
  /** Valid PAN lengths; the first is the usual one. */
  readonly lengths: readonly number[];
  readonly securityCodeLength: 3 | 4;
  /** How the brand is written for people (the desktop, prompts). */
  readonly label: string;
}

const range = (digits: number, from: number, to = from): BinRange => ({ digits, from, to });

export const BRAND_RULES: readonly BrandRule[] = [
  { brand: 'visa', label: 'Visa', ranges: [range(1, 4)], lengths: [16, 18, 19], securityCodeLength: 3 },
  { brand: 'mastercard', label: 'Mastercard', ranges: [range(2, 51, 55), range(4, 2221, 2720)], lengths: [16], securityCodeLength: 3 },
  { brand: 'amex', label: 'American Express', ranges: [range(2, 34), range(2, 37)], lengths: [15], securityCodeLength: 4 },
  { brand: 'jcb', label: 'JCB', ranges: [range(4, 3528, 3589)], lengths: [16, 17, 18, 19], securityCodeLength: 3 },
  { brand: 'diners', label: 'Diners Club', ranges: [range(3, 300, 305), range(2, 36), range(2, 38, 39)], lengths: [14, 16, 19], securityCodeLength: 3 },
  { brand: 'discover', label: 'Discover', ranges: [range(4, 6011), range(3, 644, 649), range(2, 65)], lengths: [16, 19], securityCodeLength: 3 },
  { brand: 'unionpay', label: 'UnionPay', ranges: [range(2, 62)], lengths: [16, 17, 18, 19], securityCodeLength: 3 },
];

/** Longest prefix any range is written in: past this many digits an unknown BIN stays unknown. */
const LONGEST_RANGE_DIGITS = Math.max(...BRAND_RULES.flatMap((r) => r.ranges.map((x) => x.digits)));

export function brandRule(brand: CardBrand): BrandRule {
  return BRAND_RULES.find((r) => r.brand === brand)!;
}

/**
 * The brand of a (partial) card number: known as soon as the digits keyed decide it, undefined
 * while they do not yet, 'unknown' once enough digits are in that no brand can match.
 */
export function brandOf(pan: CardDigits): CardBrand | 'unknown' | undefined {
  let possible = false;
  for (const rule of BRAND_RULES) {
    for (const r of rule.ranges) {
      if (pan.length >= r.digits) {
        const p = pan.prefix(r.digits);
        if (p >= r.from && p <= r.to) return rule.brand;
      } else {
        // could the digits keyed so far still grow into this range?
        const scale = 10 ** (r.digits - pan.length);
        const lo = pan.prefix(pan.length) * scale;
        if (lo + scale - 1 >= r.from && lo <= r.to) possible = true;
      }
    }
  }
  return possible || pan.length < LONGEST_RANGE_DIGITS ? undefined : 'unknown';
}

/**
 * Whether the card-number field is complete without a `#`: at the brand's usual length when
 * the Luhn check passes (a mistyped number keeps the field open for a fix with `*` or a `#`),
 * or at its longest length in any case. An unknown brand takes up to 19 digits.
 */
export function panComplete(pan: CardDigits): boolean {
  const brand = brandOf(pan);
  if (brand === undefined) return false;
  if (brand === 'unknown') return pan.length >= 19;
  const rule = brandRule(brand);
  const usual = rule.lengths[0]!;
  const longest = rule.lengths[rule.lengths.length - 1]!;
  return pan.length >= longest || (pan.length === usual && pan.luhnValid());
}

/** Checks a finished card number against the brand rules and the tenant's accepted brands. */
export function checkPan(pan: CardDigits, accepted: readonly CardBrand[]): { ok: true; brand: CardBrand } | { ok: false; error: CaptureErrorType } {
  const brand = brandOf(pan);
  if (brand === undefined || brand === 'unknown') {
    // too short to know, or no brand at all
    return { ok: false, error: pan.length < 12 ? 'invalid-card-number' : 'invalid-card-type' };
  }
  if (!accepted.includes(brand)) return { ok: false, error: 'invalid-card-type' };
  if (!brandRule(brand).lengths.includes(pan.length) || !pan.luhnValid()) return { ok: false, error: 'invalid-card-number' };
  return { ok: true, brand };
}

export interface Expiry {
  readonly month: number;
  /** Four digits. */
  readonly year: number;
}

/** The most years ahead an expiry may be. */
export const MAX_EXPIRY_YEARS_AHEAD = 20;

/**
 * MMYY keyed by the caller: month 01–12, not past (a card is valid through the last day of its
 * month), at most 20 years ahead. `today` is calendar time (the injected clock's wallMs), read
 * in UTC+9 — the day a card expires is the issuer's, and hushpay's first market is Japan.
 */
export function checkExpiry(mmyy: readonly number[], todayMs: number): { ok: true; expiry: Expiry } | { ok: false; error: 'invalid-date' } {
  if (mmyy.length !== 4 || mmyy.some((d) => !Number.isInteger(d) || d < 0 || d > 9)) return { ok: false, error: 'invalid-date' };
  const month = mmyy[0]! * 10 + mmyy[1]!;
  if (month < 1 || month > 12) return { ok: false, error: 'invalid-date' };
  const today = new Date(todayMs + 9 * 3_600_000);
  const thisYear = today.getUTCFullYear();
  const thisMonth = today.getUTCMonth() + 1;
  const century = Math.floor(thisYear / 100) * 100;
  let year = century + mmyy[2]! * 10 + mmyy[3]!;
  if (year < thisYear - 50) year += 100; // YY near 00 across a century boundary
  const monthsAhead = (year - thisYear) * 12 + (month - thisMonth);
  if (monthsAhead < 0 || monthsAhead > MAX_EXPIRY_YEARS_AHEAD * 12) return { ok: false, error: 'invalid-date' };
  return { ok: true, expiry: { month, year } };
}

/** The security code's length for a brand (Amex 4, the rest 3). */
export function securityCodeLength(brand: CardBrand | undefined): 3 | 4 {
  return brand === undefined ? 3 : brandRule(brand).securityCodeLength;
}

export function checkSecurityCode(code: CardDigits, brand: CardBrand | undefined): { ok: true } | { ok: false; error: 'invalid-security-code' } {
  return code.length === securityCodeLength(brand) ? { ok: true } : { ok: false, error: 'invalid-security-code' };
}

/** The masked form a desktop may show: `•••• •••• •••• 4242` once complete, else nothing. */
export function maskedPan(pan: CardDigits, complete: boolean): string | undefined {
  if (!complete || pan.length < 4) return undefined;
  const last = pan.lastFour();
  const hidden = pan.length - 4;
  const dots = '•'.repeat(hidden).replace(/(.{4})/g, '$1 ').trimEnd();
  return `${dots} ${last}`;
}

/**
 * Whether a merchant's text (an order id, a member id) holds what looks like a card number: a
 * run of 14–19 digits (spaces or dashes allowed between them) starting 2–6, as the brands'
 * numbers do, that passes the Luhn check. (A millisecond timestamp starts with 1: order numbers
 * like it pass.)
 */
export function holdsCardNumber(text: string): boolean {
  for (const m of text.matchAll(/(?<!\d)[2-6](?:[ -]?\d){13,18}(?!\d)/g)) {
    if (luhnValid(Array.from(m[0].replace(/[ -]/g, ''), (c) => c.charCodeAt(0) - 48))) return true;
  }
  return false;
}
