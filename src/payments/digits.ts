/**
 * Card digits in memory: the one type that holds a PAN or a security code.
 *
 * A `CardDigits` is an immutable value over a small byte buffer (one digit 0–9 per byte): adding
 * or removing a digit makes a new value, so the capture flow's transitions stay pure (its paths
 * are generated and tested). The capture runtime wipes every value it replaces, and the last
 * one right after the gateway call: `wipe()` zeroes the bytes, and a wiped value refuses use.
 *
 * Its string, JSON and inspect forms are masked (`[card digits: 16]`), so a value that slips into
 * a log line, an event, an error or a snapshot carries a count and nothing else. The digits
 * leave only through `reveal()`, for the moment a gateway request is built. JavaScript strings
 * cannot be zeroed: a revealed string lives until the collector takes it, which is why reveal
 * hands it to a callback rather than returning it, and why nothing else ever builds one.
 */

import { inspect } from 'node:util';
import { InvalidStateError } from '../errors.ts';

/** The longest PAN (ISO/IEC 7812: 19 digits). */
export const MAX_CARD_DIGITS = 19;

/** ISO/IEC 7812 Luhn (mod 10) check over digits 0–9, most significant first; false when empty. */
export function luhnValid(digits: ArrayLike<number>): boolean {
  const n = digits.length;
  if (n === 0) return false;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let d = digits[n - 1 - i]!;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

export class CardDigits {
  static readonly EMPTY = new CardDigits(new Uint8Array(0));

  readonly #bytes: Uint8Array;
  #wiped = false;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** A new value with `digit` (0–9) appended; at most MAX_CARD_DIGITS. */
  with(digit: number): CardDigits {
    this.#check();
    if (!Number.isInteger(digit) || digit < 0 || digit > 9) throw new RangeError('a card digit is 0–9');
    if (this.#bytes.length >= MAX_CARD_DIGITS) throw new RangeError(`card digits hold at most ${MAX_CARD_DIGITS}`);
    const next = new Uint8Array(this.#bytes.length + 1);
    next.set(this.#bytes);
    next[this.#bytes.length] = digit;
    return new CardDigits(next);
  }

  /** A new value without the last digit (empty stays empty). */
  withoutLast(): CardDigits {
    this.#check();
    return this.#bytes.length === 0 ? this : new CardDigits(this.#bytes.slice(0, -1));
  }

  /** The digit at `index` (0-based), for the card rules. */
  at(index: number): number {
    this.#check();
    const d = this.#bytes[index];
    if (d === undefined) throw new RangeError(`no digit ${index} of ${this.#bytes.length}`);
    return d;
  }

  /** The first `count` digits as a number (a BIN prefix for brand rules); count ≤ 8. */
  prefix(count: number): number {
    this.#check();
    let value = 0;
    for (let i = 0; i < count && i < this.#bytes.length; i++) value = value * 10 + this.#bytes[i]!;
    return value;
  }

  /** ISO/IEC 7812 Luhn (mod 10) check over every digit. */
  luhnValid(): boolean {
    this.#check();
    return luhnValid(this.#bytes);
  }

  /** The last four digits (PCI DSS 3.4.1 allows BIN and last four to be shown). */
  lastFour(): string {
    this.#check();
    if (this.#bytes.length < 4) throw new RangeError('fewer than four digits');
    return Array.from(this.#bytes.subarray(-4), (d) => String(d)).join('');
  }

  /**
   * Hands the digits as a string to `use`, for building a gateway request. Nothing else turns
   * card digits into a string; keep what `use` does with it inside the request.
   */
  reveal<T>(use: (digits: string) => T): T {
    this.#check();
    return use(Array.from(this.#bytes, (d) => String.fromCharCode(48 + d)).join(''));
  }

  /** Zeroes the bytes; the value is unusable afterwards. Idempotent. (EMPTY holds nothing and stays usable.) */
  wipe(): void {
    if (this === CardDigits.EMPTY) return;
    this.#bytes.fill(0);
    this.#wiped = true;
  }

  toString(): string {
    return `[card digits: ${this.#bytes.length}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }

  /** For tests and the sandbox: digits from a string of 0–9. */
  static of(text: string): CardDigits {
    if (!/^\d{0,19}$/.test(text)) throw new RangeError(`card digits are 0–${MAX_CARD_DIGITS} digits 0–9`);
    return new CardDigits(Uint8Array.from(text, (c) => c.charCodeAt(0) - 48));
  }

  #check(): void {
    if (this.#wiped) throw new InvalidStateError(`card digits used after wipe (${this.#bytes.length} digits)`);
  }
}
