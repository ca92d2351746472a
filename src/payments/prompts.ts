/**
 * What the caller hears during a capture, in Japanese or English, on the caller's leg only.
 *
 * Each prompt is a short clip (`src/payments/prompts/{ja,en}/<id>.wav`, 8 kHz μ-law, made by
 * `npm run prompts` with espeak-ng from the texts below). A tenant can put its own recordings in
 * a folder (same names; any WAV hushpay reads, at 8 kHz) and those are played instead. The amount
 * in "¥12,000 — press 1 to confirm" is spoken from clips of number words. In `tones` mode the
 * caller hears short single-frequency beeps instead of speech (never a DTMF pair).
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PromptId } from '../../flows/capture.machine.ts';
import { ConfigError } from '../errors.ts';
import { decodeWavToInt16, readWav } from '../media/wav.ts';

export type PromptLanguage = 'ja' | 'en';
export type PromptMode = 'speech' | 'tones';

/** The folder of the default clips. */
export const DEFAULT_PROMPT_DIR = fileURLToPath(new URL('./prompts/', import.meta.url));

/**
 * The words of every clip. Japanese is written in kana: espeak-ng reads kana, and spells kanji
 * out as "Chinese letter" in English.
 */
export const PROMPT_TEXTS: Readonly<Record<PromptLanguage, Readonly<Record<string, string>>>> = {
  en: {
    'enter-card-number': 'Please enter your card number.',
    'enter-expiry': 'Please enter the expiry date: two digits for the month, then two for the year.',
    'enter-security-code': 'Please enter the three digit security code.',
    'enter-security-code-amex': 'Please enter the four digit security code.',
    'choose-payment-method': 'For a single payment, press 1. For instalments, press 2. For a bonus payment, press 3. For revolving payment, press 4.',
    'enter-installments': 'Please enter the number of instalments, then press the hash key.',
    'confirm-amount': 'The amount is',
    'confirm-amount-end': 'If this is correct, press 1. If not, press 2.',
    'field-restarted': 'Starting again.',
    'error-invalid-card-number': 'That card number is not valid.',
    'error-invalid-card-type': 'That card cannot be used.',
    'error-invalid-date': 'That expiry date is not valid.',
    'error-invalid-security-code': 'That security code is not valid.',
    'error-timeout': 'We did not receive your entry.',
    'error-invalid-selection': 'That is not one of the choices.',
    'error-invalid-installments': 'That number of instalments is not available.',
    processing: 'Please wait while we process your payment.',
    approved: 'Thank you. Your payment is complete.',
    declined: 'Sorry, your card was declined.',
    cancelled: 'The payment has been cancelled.',
    failed: 'Sorry, the payment could not be completed.',
  },
  ja: {
    'enter-card-number': 'かーどばんごうを、にゅうりょくしてください。',
    'enter-expiry': 'ゆうこうきげんを、つき、ねんのじゅんに、よんけたで、にゅうりょくしてください。',
    'enter-security-code': 'せきゅりてぃこーどを、さんけたで、にゅうりょくしてください。',
    'enter-security-code-amex': 'せきゅりてぃこーどを、よんけたで、にゅうりょくしてください。',
    'choose-payment-method': 'いっかつばらいは、いち。ぶんかつばらいは、に。ぼーなすいっかつばらいは、さん。りぼばらいは、よんを、おしてください。',
    'enter-installments': 'しはらいかいすうを、にゅうりょくして、しゃーぷを、おしてください。',
    'confirm-amount': 'おしはらいきんがくは、',
    'confirm-amount-end': 'です。よろしければ、いち。ちがうばあいは、にを、おしてください。',
    'field-restarted': 'さいしょから、にゅうりょくしてください。',
    'error-invalid-card-number': 'かーどばんごうが、ただしくありません。',
    'error-invalid-card-type': 'このかーどは、ごりよういただけません。',
    'error-invalid-date': 'ゆうこうきげんが、ただしくありません。',
    'error-invalid-security-code': 'せきゅりてぃこーどが、ただしくありません。',
    'error-timeout': 'にゅうりょくが、かくにんできませんでした。',
    'error-invalid-selection': 'そのばんごうは、えらべません。',
    'error-invalid-installments': 'そのしはらいかいすうは、ごりよういただけません。',
    processing: 'しょりちゅうです。しょうしょう、おまちください。',
    approved: 'おしはらいが、かんりょうしました。ありがとうございました。',
    declined: 'もうしわけございません。このかーどは、ごりよういただけませんでした。',
    cancelled: 'おしはらいを、とりけしました。',
    failed: 'もうしわけございません。おしはらいを、かんりょうできませんでした。',
  },
};

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

const EN_ONES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const EN_TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
const JA_DIGITS = ['', 'いち', 'に', 'さん', 'よん', 'ご', 'ろく', 'なな', 'はち', 'きゅう'];
/** 百 and 千 change their sound after some digits (三百 さんびゃく, 八千 はっせん): one clip each. */
const JA_HUNDREDS = ['', 'ひゃく', 'にひゃく', 'さんびゃく', 'よんひゃく', 'ごひゃく', 'ろっぴゃく', 'ななひゃく', 'はっぴゃく', 'きゅうひゃく'];
const JA_THOUSANDS = ['', 'せん', 'にせん', 'さんぜん', 'よんせん', 'ごせん', 'ろくせん', 'ななせん', 'はっせん', 'きゅうせん'];

/** Currencies spoken by name; others are spoken as a number only. Minor units per ISO 4217. */
const CURRENCIES: Readonly<Record<string, { readonly minor: number; readonly en: readonly [string, string]; readonly enMinor?: readonly [string, string]; readonly ja: string }>> = {
  JPY: { minor: 0, en: ['yen', 'yen'], ja: 'えん' },
  USD: { minor: 2, en: ['dollar', 'dollars'], enMinor: ['cent', 'cents'], ja: 'どる' },
  EUR: { minor: 2, en: ['euro', 'euros'], enMinor: ['cent', 'cents'], ja: 'ゆーろ' },
};

/** The clip names that speak `n` (0 ≤ n < 10^12) in English. */
export function englishNumber(n: number): string[] {
  if (!Number.isInteger(n) || n < 0 || n >= 1e12) throw new RangeError('a spoken number is a whole number below 10^12');
  if (n < 20) return [`n-${EN_ONES[n]}`];
  const words: string[] = [];
  const scales: [number, string][] = [
    [1e9, 'billion'],
    [1e6, 'million'],
    [1e3, 'thousand'],
  ];
  let rest = n;
  for (const [size, name] of scales) {
    if (rest >= size) {
      words.push(...englishNumber(Math.floor(rest / size)), `n-${name}`);
      rest %= size;
    }
  }
  if (rest >= 100) {
    words.push(`n-${EN_ONES[Math.floor(rest / 100)]}`, 'n-hundred');
    rest %= 100;
  }
  if (rest >= 20) {
    words.push(`n-${EN_TENS[Math.floor(rest / 10)]}`);
    rest %= 10;
    if (rest > 0) words.push(`n-${EN_ONES[rest]}`);
  } else if (rest > 0) words.push(`n-${EN_ONES[rest]}`);
  return words;
}

/** The clip names that speak `n` (0 ≤ n < 10^12) in Japanese: 万 and 億 groups of four digits. */
export function japaneseNumber(n: number): string[] {
  if (!Number.isInteger(n) || n < 0 || n >= 1e12) throw new RangeError('a spoken number is a whole number below 10^12');
  if (n === 0) return ['n-zero'];
  const group = (g: number): string[] => {
    const out: string[] = [];
    const th = Math.floor(g / 1000);
    const hu = Math.floor(g / 100) % 10;
    const te = Math.floor(g / 10) % 10;
    const on = g % 10;
    if (th) out.push(`n-${th}000`);
    if (hu) out.push(`n-${hu}00`);
    if (te) out.push(...(te > 1 ? [`n-${te}`] : []), 'n-10');
    if (on) out.push(`n-${on}`);
    return out;
  };
  const oku = Math.floor(n / 1e8);
  const man = Math.floor(n / 1e4) % 1e4;
  const rest = n % 1e4;
  const words: string[] = [];
  if (oku) words.push(...group(oku), 'n-oku');
  if (man) words.push(...group(man), 'n-man');
  if (rest) words.push(...group(rest));
  return words;
}

/** The clip names that speak an amount given in the currency's minor unit. */
export function amountWords(value: number, currency: string, language: PromptLanguage): string[] {
  const c = CURRENCIES[currency.toUpperCase()];
  const minor = c?.minor ?? 0;
  const major = Math.floor(value / 10 ** minor);
  const cents = value % 10 ** minor;
  if (language === 'ja') {
    const words = japaneseNumber(major);
    if (cents) words.push('n-point', ...String(cents).padStart(minor, '0').split('').map((d) => (d === '0' ? 'n-zero' : `n-${d}`)));
    if (c) words.push(`c-${currency.toLowerCase()}`);
    return words;
  }
  const words = englishNumber(major);
  if (c) words.push(`c-${currency.toLowerCase()}${major === 1 ? '' : '-plural'}`);
  if (cents && c?.enMinor) words.push('n-and', ...englishNumber(cents), `c-${currency.toLowerCase()}-minor${cents === 1 ? '' : '-plural'}`);
  return words;
}

/** Every number and currency clip, with its words, for the generator. */
export function numberClipTexts(language: PromptLanguage): Record<string, string> {
  const out: Record<string, string> = {};
  if (language === 'en') {
    EN_ONES.forEach((w) => (out[`n-${w}`] = w));
    EN_TENS.slice(2).forEach((w) => (out[`n-${w}`] = w));
    for (const w of ['hundred', 'thousand', 'million', 'billion', 'and']) out[`n-${w}`] = w;
    for (const [code, c] of Object.entries(CURRENCIES)) {
      out[`c-${code.toLowerCase()}`] = c.en[0];
      out[`c-${code.toLowerCase()}-plural`] = c.en[1];
      if (c.enMinor) {
        out[`c-${code.toLowerCase()}-minor`] = c.enMinor[0];
        out[`c-${code.toLowerCase()}-minor-plural`] = c.enMinor[1];
      }
    }
    return out;
  }
  for (let d = 1; d <= 9; d++) {
    out[`n-${d}`] = JA_DIGITS[d]!;
    out[`n-${d}00`] = JA_HUNDREDS[d]!;
    out[`n-${d}000`] = JA_THOUSANDS[d]!;
  }
  Object.assign(out, { 'n-zero': 'ぜろ', 'n-10': 'じゅう', 'n-man': 'まん', 'n-oku': 'おく', 'n-point': 'てん' });
  for (const [code, c] of Object.entries(CURRENCIES)) out[`c-${code.toLowerCase()}`] = c.ja;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The library
// ---------------------------------------------------------------------------------------------

const SAMPLE_RATE_HZ = 8000;
/** A pause between the clips of one prompt (the words of an amount). */
const GAP_SAMPLES = 480;

/** Tones mode: each prompt as beeps, [frequencyHz, ms] with 80 ms between; none is a DTMF pair. */
const TONES: Readonly<Record<string, readonly (readonly [number, number])[]>> = {
  ask: [[660, 200]],
  'ask-amount': [[660, 150], [660, 150]],
  error: [[330, 250], [330, 250]],
  restart: [[440, 120]],
  processing: [[520, 80], [520, 80], [520, 80]],
  approved: [[523, 150], [659, 150], [784, 250]],
  declined: [[784, 150], [659, 150], [523, 250]],
  ended: [[440, 400]],
};

function toneKind(prompt: string): keyof typeof TONES {
  if (prompt.startsWith('error-')) return 'error';
  if (prompt === 'confirm-amount') return 'ask-amount';
  if (prompt === 'field-restarted') return 'restart';
  if (prompt === 'processing') return 'processing';
  if (prompt === 'approved') return 'approved';
  if (prompt === 'declined' || prompt === 'failed') return 'declined';
  if (prompt === 'cancelled') return 'ended';
  return 'ask';
}

function beeps(pattern: readonly (readonly [number, number])[]): Int16Array {
  const gap = (80 * SAMPLE_RATE_HZ) / 1000;
  const total = pattern.reduce((n, [, ms]) => n + (ms * SAMPLE_RATE_HZ) / 1000 + gap, 0);
  const out = new Int16Array(total);
  let at = 0;
  const amplitude = 32767 * 10 ** (-12 / 20); // about −15 dBm0
  for (const [hz, ms] of pattern) {
    const n = (ms * SAMPLE_RATE_HZ) / 1000;
    const ramp = 40; // 5 ms in and out, no click
    for (let i = 0; i < n; i++) {
      const envelope = Math.min(1, i / ramp, (n - 1 - i) / ramp);
      out[at + i] = Math.round(amplitude * envelope * Math.sin((2 * Math.PI * hz * i) / SAMPLE_RATE_HZ));
    }
    at += n + gap;
  }
  return out;
}

export interface PromptLibraryOptions {
  readonly language: PromptLanguage;
  readonly mode?: PromptMode;
  /** A tenant's own recordings: `<id>.wav` there replaces the default clip of that name. */
  readonly customDir?: string;
}

export class PromptLibrary {
  readonly language: PromptLanguage;
  readonly mode: PromptMode;
  readonly #clips = new Map<string, Int16Array>();

  private constructor(language: PromptLanguage, mode: PromptMode) {
    this.language = language;
    this.mode = mode;
  }

  /** Loads every clip of a language (the defaults, then the tenant's over them); throws ConfigError naming a bad file. */
  static load(options: PromptLibraryOptions): PromptLibrary {
    const library = new PromptLibrary(options.language, options.mode ?? 'speech');
    if (library.mode === 'tones') return library;
    const dirs = [join(DEFAULT_PROMPT_DIR, options.language), ...(options.customDir ? [options.customDir] : [])];
    for (const dir of dirs) {
      if (!existsSync(dir)) throw new ConfigError('prompts', `the prompt folder ${dir} does not exist`);
      for (const file of readdirSync(dir)) {
        if (!file.endsWith('.wav')) continue;
        try {
          const wav = readWav(readFileSync(join(dir, file)));
          if (wav.sampleRateHz !== SAMPLE_RATE_HZ) throw new Error(`${wav.sampleRateHz} Hz, not 8000`);
          const channels = decodeWavToInt16(wav);
          library.#clips.set(file.slice(0, -4), channels[0]!);
        } catch (err) {
          throw new ConfigError('prompts', `cannot use ${join(dir, file)}: ${(err as Error).message}`);
        }
      }
    }
    return library;
  }

  /** The ids of every clip loaded. */
  get clipIds(): string[] {
    return [...this.#clips.keys()];
  }

  /** The audio of a prompt (8 kHz linear), the amount spoken where the prompt has one. */
  render(prompt: PromptId, amount?: { readonly value: number; readonly currency: string }): Int16Array {
    if (this.mode === 'tones') return beeps(TONES[toneKind(prompt)]!);
    const parts = prompt === 'confirm-amount' && amount ? ['confirm-amount', ...amountWords(amount.value, amount.currency, this.language), 'confirm-amount-end'] : [prompt];
    const clips = parts.map((id) => {
      const clip = this.#clips.get(id);
      if (!clip) throw new ConfigError('prompts', `no clip "${id}" for ${this.language}`);
      return clip;
    });
    const total = clips.reduce((n, c) => n + c.length, 0) + GAP_SAMPLES * (clips.length - 1);
    const out = new Int16Array(total);
    let at = 0;
    for (const c of clips) {
      out.set(c, at);
      at += c.length + GAP_SAMPLES;
    }
    return out;
  }
}

/**
 * Plays prompts into the caller's leg, 20 ms at a time: the call asks `next()` for each packet's
 * samples and mixes them in. A new prompt waits for the one playing; `stop()` drops them all.
 */
export class PromptPlayer {
  readonly #queue: Int16Array[] = [];
  #at = 0;

  get playing(): boolean {
    return this.#queue.length > 0;
  }

  enqueue(samples: Int16Array): void {
    if (samples.length > 0) this.#queue.push(samples);
  }

  /** The next `count` samples to mix (zeros past the end), or undefined when nothing plays. */
  next(count: number): Int16Array | undefined {
    if (this.#queue.length === 0) return undefined;
    const out = new Int16Array(count);
    let filled = 0;
    while (filled < count && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const take = Math.min(count - filled, head.length - this.#at);
      out.set(head.subarray(this.#at, this.#at + take), filled);
      filled += take;
      this.#at += take;
      if (this.#at >= head.length) {
        this.#queue.shift();
        this.#at = 0;
      }
    }
    return out;
  }

  stop(): void {
    this.#queue.length = 0;
    this.#at = 0;
  }
}
