/**
 * Prompts: every prompt the capture can ask for exists in Japanese and English and as tones;
 * amounts are spoken from number words; a tenant's recordings replace the defaults; the
 * committed clips are what `npm run prompts` makes; and no prompt holds anything a DTMF
 * detector reads as a key (a prompt can echo back from the caller's phone).
 */

import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PromptId } from '../../flows/capture.machine.ts';
import { ConfigError } from '../../src/errors.ts';
import { DtmfEngine } from '../../src/media/dtmf/engine.ts';
import { writeWav } from '../../src/media/wav.ts';
import { amountWords, DEFAULT_PROMPT_DIR, englishNumber, japaneseNumber, numberClipTexts, PROMPT_TEXTS, PromptLibrary, PromptPlayer } from '../../src/payments/prompts.ts';
import { makePrompts } from '../../src/tools/make-prompts.ts';
import { decodeMultimon } from '../support/referees.ts';

const PROMPTS: PromptId[] = [
  'enter-card-number', 'enter-expiry', 'enter-security-code', 'enter-security-code-amex', 'choose-payment-method', 'enter-installments', 'confirm-amount', 'field-restarted',
  'error-invalid-card-number', 'error-invalid-card-type', 'error-invalid-date', 'error-invalid-security-code', 'error-timeout', 'error-invalid-selection', 'error-invalid-installments',
  'processing', 'approved', 'declined', 'cancelled', 'failed',
];

function digitsIn(samples: Int16Array): string {
  let found = '';
  const engine = new DtmfEngine({ outputs: [], onDigit: (d) => (found += d.digit) });
  for (let i = 0; i < samples.length; i += 160) engine.processLinear(samples.subarray(i, i + 160));
  engine.flushLinear();
  return found;
}

describe('spoken numbers', () => {
  it('English', () => {
    expect(englishNumber(12_000)).toEqual(['n-twelve', 'n-thousand']);
    expect(englishNumber(1_234_567)).toEqual(['n-one', 'n-million', 'n-two', 'n-hundred', 'n-thirty', 'n-four', 'n-thousand', 'n-five', 'n-hundred', 'n-sixty', 'n-seven']);
    expect(englishNumber(0)).toEqual(['n-zero']);
    expect(amountWords(1_250, 'USD', 'en')).toEqual(['n-twelve', 'c-usd-plural', 'n-and', 'n-fifty', 'c-usd-minor-plural']);
    expect(amountWords(100, 'USD', 'en')).toEqual(['n-one', 'c-usd']);
  });

  it('Japanese, in 万 and 億, with the sounds of 百 and 千 after each digit', () => {
    expect(japaneseNumber(12_000)).toEqual(['n-1', 'n-man', 'n-2000']); // いちまんにせん
    expect(japaneseNumber(35_800)).toEqual(['n-3', 'n-man', 'n-5000', 'n-800']); // さんまんごせんはっぴゃく
    expect(japaneseNumber(10)).toEqual(['n-10']);
    expect(japaneseNumber(21)).toEqual(['n-2', 'n-10', 'n-1']);
    expect(japaneseNumber(300_000_000)).toEqual(['n-3', 'n-oku']);
    expect(amountWords(12_000, 'JPY', 'ja')).toEqual(['n-1', 'n-man', 'n-2000', 'c-jpy']);
    expect(() => japaneseNumber(-1)).toThrow(RangeError);
  });

  it('has a clip text for every word it can say', () => {
    for (const language of ['en', 'ja'] as const) {
      const clips = numberClipTexts(language);
      for (const n of [0, 7, 10, 19, 20, 99, 100, 999, 1000, 8000, 12_000, 300_000, 10_000_000, 123_456_789, 999_999_999_999]) {
        for (const word of amountWords(n, 'JPY', language)) expect(clips[word], `${language} ${n} ${word}`).toBeDefined();
      }
    }
  });
});

describe('prompt library', () => {
  it.each(['en', 'ja'] as const)('%s: every prompt and amount renders, with a length a caller can follow', (language) => {
    const library = PromptLibrary.load({ language });
    for (const prompt of PROMPTS) {
      const audio = library.render(prompt, prompt === 'confirm-amount' ? { value: 35_800, currency: 'JPY' } : undefined);
      expect(audio.length / 8000, prompt).toBeGreaterThan(0.3);
      expect(audio.length / 8000, prompt).toBeLessThan(15);
    }
    const withAmount = library.render('confirm-amount', { value: 12_000, currency: 'JPY' });
    expect(withAmount.length).toBeGreaterThan(library.render('confirm-amount').length);
  });

  it('tones mode: short single-frequency beeps, different for asking, errors and results', () => {
    const tones = PromptLibrary.load({ language: 'en', mode: 'tones' });
    const lengths = new Set(PROMPTS.map((p) => tones.render(p).length));
    expect(lengths.size).toBeGreaterThanOrEqual(5);
    for (const p of PROMPTS) expect(tones.render(p).length / 8000).toBeLessThan(1);
  });

  it('nothing a prompt says is a key press, to hushpay’s detector or to multimon-ng', async () => {
    const all: Int16Array[] = [];
    for (const language of ['en', 'ja'] as const) {
      const library = PromptLibrary.load({ language });
      for (const id of library.clipIds) all.push(library.render(id as PromptId));
      all.push(library.render('confirm-amount', { value: 987_654, currency: 'JPY' }));
    }
    const tones = PromptLibrary.load({ language: 'en', mode: 'tones' });
    for (const p of PROMPTS) all.push(tones.render(p));
    const joined = new Int16Array(all.reduce((n, a) => n + a.length + 4000, 0));
    let at = 0;
    for (const a of all) {
      joined.set(a, at);
      at += a.length + 4000;
    }
    expect(joined.length / 8000).toBeGreaterThan(200); // minutes of prompts
    expect(digitsIn(joined)).toBe('');
    expect(await decodeMultimon(joined)).toEqual([]);
  });

  it('a tenant’s recordings replace the defaults; a file it cannot play is named in a ConfigError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenant-prompts-'));
    const custom = new Int16Array(8000).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 500 * i) / 8000)));
    writeFileSync(join(dir, 'approved.wav'), writeWav({ format: 'pcm16', sampleRateHz: 8000, channels: 1 }, new Uint8Array(custom.buffer)));
    const library = PromptLibrary.load({ language: 'ja', customDir: dir });
    expect(library.render('approved')).toEqual(custom);
    expect(library.render('declined').length).toBeGreaterThan(0); // the rest are the defaults
    writeFileSync(join(dir, 'declined.wav'), writeWav({ format: 'pcm16', sampleRateHz: 16000, channels: 1 }, new Uint8Array(3200)));
    expect(() => PromptLibrary.load({ language: 'ja', customDir: dir })).toThrow(ConfigError);
    expect(() => PromptLibrary.load({ language: 'ja', customDir: dir })).toThrow(/declined\.wav: 16000 Hz/);
    expect(() => PromptLibrary.load({ language: 'en', customDir: join(dir, 'missing') })).toThrow(/does not exist/);
  });

  it('the committed clips are the ones `npm run prompts` makes from the texts', () => {
    const out = mkdtempSync(join(tmpdir(), 'made-prompts-'));
    const made = makePrompts(out);
    for (const { language, clips } of made) {
      const committed = readdirSync(join(DEFAULT_PROMPT_DIR, language)).sort();
      const fresh = readdirSync(join(out, language)).sort();
      expect(fresh).toEqual(committed);
      expect(clips).toBe(Object.keys({ ...PROMPT_TEXTS[language], ...numberClipTexts(language) }).length);
      const a = PromptLibrary.load({ language });
      const b = PromptLibrary.load({ language, customDir: join(out, language) });
      for (const id of a.clipIds) expect(Math.abs(b.render(id as PromptId).length - a.render(id as PromptId).length), id).toBeLessThanOrEqual(80);
    }
  }, 120_000);
});

describe('prompt player', () => {
  it('plays queued prompts 20 ms at a time, one after the other, and stops at once', () => {
    const player = new PromptPlayer();
    expect(player.next(160)).toBeUndefined();
    player.enqueue(new Int16Array(200).fill(1));
    player.enqueue(new Int16Array(100).fill(2));
    const first = player.next(160)!;
    const second = player.next(160)!;
    expect([first.every((s) => s === 1), second.subarray(0, 40).every((s) => s === 1), second.subarray(40, 140).every((s) => s === 2), second.subarray(140).every((s) => s === 0)]).toEqual([true, true, true, true]);
    expect(player.playing).toBe(false);
    player.enqueue(new Int16Array(1000));
    player.stop();
    expect(player.next(160)).toBeUndefined();
  });
});
