/**
 * The DTMF engine graded by others: sox makes the audio where it matters, multimon-ng and
 * spandsp decide whether a masked output still holds a digit.
 */

import { describe, expect, it } from 'vitest';
import { MediaConfigError } from '../../src/errors.ts';
import { DtmfEngine, type MaskMode } from '../../src/media/dtmf/engine.ts';
import { ALL_DIGITS } from '../../src/media/dtmf/frequencies.ts';
import { addDtmfTone, toInt16 } from '../../src/media/dtmf/tones.ts';
import { decode, encode } from '../../src/media/g711.ts';
import { concatPcm, naturalSpeechFiles, readPcm16Wav, scaleToActiveLevel } from '../support/corpus.ts';
import { ISSUE_MATRIX, buildMatrix } from '../support/matrix.ts';
import { runQ24 } from '../support/q24.ts';
import { SPANDSP_WIDE, decodeMultimon, decodeSpandsp } from '../support/referees.ts';
import { KEYPAD_KEYS, LEAK_KEYS, speechOverDigits } from '../support/scenes.ts';
import { soxDtmf } from '../support/soxgen.ts';

/** Runs μ-law through the engine in 20 ms packets; returns the output aligned with the input. */
function maskUlaw(input: Uint8Array, mode: MaskMode, delayMs = 20): { output: Uint8Array; spans: [number, number][]; digits: string } {
  const spans: [number, number][] = [];
  let digits = '';
  const engine = new DtmfEngine({ delayMs, outputs: [mode], onMaskedSpan: (a, b) => spans.push([a, b]), onDigit: (d) => (digits += d.digit) });
  const out = new Uint8Array(input.length + engine.delaySamples);
  let at = 0;
  for (let i = 0; i < input.length; i += 160) {
    const chunk = engine.processG711('pcmu', input.subarray(i, i + 160))[0]!;
    out.set(chunk, at);
    at += chunk.length;
  }
  out.set(engine.flushG711('pcmu')[0]!, at);
  return { output: out.subarray(engine.delaySamples), spans, digits };
}

async function decoders(pcm: Int16Array): Promise<{ multimon: number; spandsp: number; wide: number }> {
  const [m, s, w] = await Promise.all([decodeMultimon(pcm), decodeSpandsp(pcm), decodeSpandsp(pcm, SPANDSP_WIDE)]);
  return { multimon: m.length, spandsp: s.length, wide: w.length };
}

describe('DTMF engine', () => {
  it('leaves nothing any referee can decode in the masked tone matrix (33,600 tones)', async () => {
    const { signal, tones } = buildMatrix(ISSUE_MATRIX, 1);
    expect(tones).toHaveLength(33_600);
    const input = encode('pcmu', signal);
    const { output, spans } = maskUlaw(input, 'silence');
    const before = await decoders(decode('pcmu', input));
    const after = await decoders(decode('pcmu', output));
    // the referees do read the unmasked matrix…
    expect(before.multimon).toBeGreaterThan(4000);
    expect(before.spandsp).toBeGreaterThan(2500);
    // …and nothing of the masked one
    expect(after).toEqual({ multimon: 0, spandsp: 0, wide: 0 });
    // masking stops within 20 ms of every tone's end
    let worst = 0;
    let s = 0;
    for (const t of tones) {
      while (s < spans.length && spans[s]![1] <= t.startSample) s++;
      const span = spans[s];
      if (span && span[0] < t.endSample) worst = Math.max(worst, span[1] - t.endSample);
    }
    expect(worst / 8).toBeLessThanOrEqual(20);
  }, 180_000);

  it('meets ITU-T Q.24 for AT&T and NTT: every accept condition, no reject condition', () => {
    const results = runQ24();
    const failed = results.filter((r) => !r.pass).map((r) => `${r.condition.expect} ${r.condition.administration} ${r.condition.name}: ${r.detected}`);
    expect(failed).toEqual([]);
    expect(results.filter((r) => r.condition.expect === 'accept').length).toBeGreaterThanOrEqual(25);
    expect(results.filter((r) => r.condition.expect === 'reject').length).toBeGreaterThanOrEqual(15);
  }, 120_000);

  it('masks digits keyed while the caller talks, names keypad digits, and invents none', async () => {
    const speech = scaleToActiveLevel(concatPcm(naturalSpeechFiles().map((set) => concatPcm(set.files.slice(200, 230).map(readPcm16Wav)))), -14);
    for (const [keys, count] of [[LEAK_KEYS, 600], [KEYPAD_KEYS, 400]] as const) {
      const { signal, keys: placed } = speechOverDigits(speech, count, keys, 3);
      const input = encode('pcmu', signal);
      const found: { digit: string; startMs: number; endMs: number }[] = [];
      const engine = new DtmfEngine({ outputs: ['silence'], onDigit: (d) => found.push(d) });
      const out: Uint8Array[] = [];
      for (let i = 0; i < input.length; i += 160) out.push(engine.processG711('pcmu', input.subarray(i, i + 160))[0]!);
      out.push(engine.flushG711('pcmu')[0]!);
      const masked = decode('pcmu', Uint8Array.from(out.flatMap((o) => [...o])));
      expect(await decoders(masked)).toEqual({ multimon: 0, spandsp: 0, wide: 0 });
      const matches = (f: { startMs: number; endMs: number }, k: { startSample: number; endSample: number }): boolean =>
        f.startMs * 8 < k.endSample && f.endMs * 8 > k.startSample;
      const invented = found.filter((f) => !placed.some((k) => matches(f, k) && k.digit === f.digit));
      expect(invented).toEqual([]);
      if (keys === KEYPAD_KEYS) {
        const named = placed.filter((k) => found.some((f) => matches(f, k) && f.digit === k.digit)).length;
        expect(named / placed.length).toBeGreaterThanOrEqual(0.95);
      }
    }
  }, 120_000);

  it('alters at most 0.5 % of 20 ms frames of natural speech and names no digit in it', () => {
    let altered = 0;
    let frames = 0;
    for (const set of naturalSpeechFiles()) {
      const input = encode('pcmu', concatPcm(set.files.slice(0, 120).map(readPcm16Wav)));
      const { spans, digits } = maskUlaw(input, 'silence');
      const touched = new Set<number>();
      for (const [a, b] of spans) for (let f = Math.floor(a / 160); f <= Math.floor((b - 1) / 160); f++) touched.add(f);
      altered += touched.size;
      frames += input.length / 160;
      expect(digits, set.language).toBe('');
    }
    expect(frames).toBeGreaterThan(100_000); // over half an hour of speech
    expect(altered / frames).toBeLessThanOrEqual(0.005);
  }, 120_000);

  it('passes unmasked audio byte for byte, exactly the delay late', () => {
    const speech = encode('pcmu', concatPcm(naturalSpeechFiles()[0]!.files.slice(0, 5).map(readPcm16Wav)));
    for (const delayMs of [20, 15, 10]) {
      const engine = new DtmfEngine({ delayMs, outputs: ['flat'] });
      const out: Uint8Array[] = [];
      for (let i = 0; i < speech.length; i += 160) out.push(engine.processG711('pcmu', speech.subarray(i, i + 160))[0]!);
      const all = Uint8Array.from(out.flatMap((o) => [...o]));
      const delay = (delayMs * 8000) / 1000;
      let differing = 0;
      for (let i = 0; i + delay < all.length; i++) if (all[i + delay] !== speech[i] && !engine.isMasked(i)) differing++;
      expect(differing).toBe(0);
      expect(all.subarray(0, delay).every((b) => b === 0xff)).toBe(true);
    }
  });

  it('however the input is cut (1, 37, 160, 8,000 samples a frame): the same digits, nothing decodable, the rest byte for byte', async () => {
    // speech with a card number in it, so masked spans start and end inside the frames
    const signal = Float64Array.from(concatPcm(naturalSpeechFiles()[0]!.files.slice(5, 8).map(readPcm16Wav)), (v) => v * 0.3);
    [...'4111111111111111'].forEach((d, i) => addDtmfTone(signal, 4000 + i * 1600, 560 + (i % 3) * 137, d as (typeof ALL_DIGITS)[number], { levelDbm0: -12 }));
    const input = encode('pcmu', toInt16(signal));
    expect((await decoders(decode('pcmu', input))).multimon).toBeGreaterThanOrEqual(14); // the referee does hear them unmasked
    for (const frame of [1, 37, 160, 8000]) {
      let digits = '';
      const spans: [number, number][] = [];
      const engine = new DtmfEngine({ outputs: ['silence'], onDigit: (d) => (digits += d.digit), onMaskedSpan: (a, b) => spans.push([a, b]) });
      const parts: Uint8Array[] = [];
      for (let i = 0; i < input.length; i += frame) parts.push(engine.processG711('pcmu', input.subarray(i, i + frame))[0]!);
      parts.push(engine.flushG711('pcmu')[0]!);
      const out = Uint8Array.from(parts.flatMap((p) => [...p])).subarray(engine.delaySamples);
      expect(digits, `${frame}-sample frames`).toBe('4111111111111111');
      expect(out.length).toBe(input.length);
      const masked = new Uint8Array(input.length);
      for (const [a, b] of spans) masked.fill(1, a, Math.min(b, input.length));
      let differing = 0;
      for (let i = 0; i < input.length; i++) if (!masked[i] && out[i] !== input[i]) differing++;
      expect(differing, `${frame}-sample frames`).toBe(0);
      expect(await decoders(decode('pcmu', out)), `${frame}-sample frames`).toEqual({ multimon: 0, spandsp: 0, wide: 0 });
    }
  });

  it('replaces a key press with one identical flat beep that no decoder reads, or with silence or noise', async () => {
    const keyed = soxDtmf({ digits: '1590', onMs: 100, gapMs: 150, levelDbm0: -7, leadMs: 200 });
    const input = encode('pcmu', keyed);
    const energy = (pcm: Int16Array, from: number, to: number): number => pcm.subarray(from, to).reduce((s, v) => s + v * v, 0) / (to - from);
    const results: Record<string, Int16Array> = {};
    for (const mode of ['flat', 'silence', 'noise'] as const) {
      const { output } = maskUlaw(input, mode);
      results[mode] = decode('pcmu', output);
      expect(await decoders(results[mode])).toEqual({ multimon: 0, spandsp: 0, wide: 0 });
    }
    const tone = (i: number): [number, number] => [1600 + i * 2000 + 80, 1600 + i * 2000 + 720];
    const flat = results['flat']!;
    // the beep is there, the same for every key, and a single 1 kHz tone
    const beeps = [0, 1, 2, 3].map((i) => energy(flat, ...tone(i)));
    for (const b of beeps) expect(b).toBeGreaterThan(1e5);
    expect(Math.max(...beeps) / Math.min(...beeps)).toBeLessThan(1.05);
    expect(energy(results['silence']!, ...tone(0))).toBe(0);
    const noise = energy(results['noise']!, ...tone(0));
    expect(noise).toBeGreaterThan(0);
    expect(noise).toBeLessThan(beeps[0]! / 100);
  });

  it('names digits of a card number keyed in-band at handset levels', () => {
    const number = '4111111111111111';
    const signal = new Float64Array(8000 * 6);
    [...number].forEach((digit, i) =>
      addDtmfTone(signal, 4000 + i * 1600, 640, digit as (typeof ALL_DIGITS)[number], { levelDbm0: -8, twistDb: 2 }),
    );
    let digits = '';
    const engine = new DtmfEngine({ onDigit: (d) => (digits += d.digit) });
    engine.processLinear(toInt16(signal));
    engine.flushLinear();
    expect(digits).toBe(number);
  });

  it.each([
    [{ delayMs: 25 }, 'mask delay must be 0–20 ms, got 25'],
    [{ delayMs: -1 }, 'mask delay must be 0–20 ms, got -1'],
    [{ delayMs: Number.NaN }, 'mask delay must be 0–20 ms, got NaN'],
  ])('refuses a bad option %o with a named error', (options, message) => {
    expect(() => new DtmfEngine(options)).toThrowError(MediaConfigError);
    expect(() => new DtmfEngine(options)).toThrowError(message);
  });
});
