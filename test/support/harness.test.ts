// Tests of the test-side harness: the independent referees (spandsp, multimon-ng), the sox
// DTMF generator and the speech corpora / P.56 level tools. None of this uses hushpay's code.

import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  activeSpeechLevel,
  activeSpeechLevelDbm0,
  concatPcm,
  espeakCorpus,
  espeakSpeech,
  fliteSpeech,
  mix,
  mulberry32,
  musicOnHold,
  naturalSpeechFiles,
  readPcm16Wav,
  rmsLevelDbm0,
  scaleToActiveLevel,
} from './corpus.ts';
import { decodeMultimon, decodeSpandsp, SPANDSP_WIDE, spandspCost, spandspReferee } from './referees.ts';
import { DBM0_RMS, msToSamples, soxDtmf } from './soxgen.ts';

const ALL = '1234567890*#ABCD';
const FS = 8000;

function sine(freq: number, dbm0: number, seconds: number): Int16Array {
  const amp = DBM0_RMS * Math.SQRT2 * 10 ** (dbm0 / 20);
  const out = new Int16Array(Math.round(seconds * FS));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amp * Math.sin((2 * Math.PI * freq * i) / FS));
  return out;
}

describe('sox DTMF generator', () => {
  it('makes tones of the requested level, length and layout', () => {
    const s = soxDtmf({ digits: '5', onMs: 100, gapMs: 40, leadMs: 30, levelDbm0: -10 });
    expect(s.length).toBe(msToSamples(30 + 100 + 40));
    const lead = s.subarray(0, msToSamples(30));
    const tone = s.subarray(msToSamples(30), msToSamples(130));
    const gap = s.subarray(msToSamples(130));
    expect(lead.every((x) => x === 0)).toBe(true);
    expect(gap.every((x) => x === 0)).toBe(true);
    // two tones at −10 dBm0 each: −6.99 dBm0 in total
    expect(rmsLevelDbm0(tone)).toBeCloseTo(-10 + 10 * Math.log10(2), 1);
  });

  it('adds white noise at the requested rms level', () => {
    const s = soxDtmf({ digits: '1', onMs: 50, gapMs: 2000, leadMs: 0, levelDbm0: -10, noiseDbm0: -20 });
    expect(Math.abs(rmsLevelDbm0(s.subarray(msToSamples(50))) - -20)).toBeLessThan(0.3);
  });

  it('applies twist and frequency offset (checked with spandsp: reverse twist limit 4 dB, 5 % offset rejected)', async () => {
    const twisted = soxDtmf({ digits: ALL, onMs: 60, gapMs: 60, levelDbm0: -15, twistDb: 7 });
    expect(await decodeSpandsp(twisted)).toEqual([]);
    expect((await decodeSpandsp(twisted, SPANDSP_WIDE)).map((d) => d.digit).join('')).toBe(ALL);
    const off = soxDtmf({ digits: ALL, onMs: 60, gapMs: 60, levelDbm0: -10, lowOffsetPct: 5 });
    expect(await decodeSpandsp(off)).toEqual([]);
    const offHigh = soxDtmf({ digits: ALL, onMs: 60, gapMs: 60, levelDbm0: -10, highOffsetPct: -5 });
    expect(await decodeSpandsp(offHigh)).toEqual([]);
  });
});

describe('referees', () => {
  it('builds the spandsp referee into the git-ignored cache', () => {
    const bin = spandspReferee();
    expect(bin).toMatch(/node_modules\/\.cache\/hushpay-referees\/spandsp_referee$/);
    expect(spandspReferee()).toBe(bin);
    expect(spawnSync(bin, ['-x']).status).toBe(2);
  });

  it('both decode the 16 digits at −10 dBm0, 50 ms on / 50 ms off', async () => {
    const s = soxDtmf({ digits: ALL, onMs: 50, gapMs: 50, levelDbm0: -10 });
    const [sp, mm] = await Promise.all([decodeSpandsp(s), decodeMultimon(s)]);
    expect(sp.map((d) => d.digit).join('')).toBe(ALL);
    expect(mm.join('')).toBe(ALL);
    // dtmf.md §1.4: a 50 ms tone from t = 100 ms is reported on at 127.5 ms, off at 165.75 ms
    expect(sp[0]).toEqual({ digit: '1', onMs: 127.5, offMs: 165.75, level: expect.any(Number) as number });
    for (const [i, d] of sp.entries()) {
      const start = 100 + i * 100;
      // two hit blocks of 102 samples; the first may be partly silence (latency 12.75–38.25 ms)
      expect(d.onMs - start).toBeGreaterThan(12.75);
      expect(d.onMs - start).toBeLessThanOrEqual(38.25);
      expect(d.offMs).toBeGreaterThan(d.onMs);
      expect(d.level).toBeGreaterThanOrEqual(-8);
      expect(d.level).toBeLessThanOrEqual(-5);
    }
  });

  it('report nothing in silence', async () => {
    const s = new Int16Array(3 * FS);
    expect(await decodeSpandsp(s)).toEqual([]);
    expect(await decodeSpandsp(s, SPANDSP_WIDE)).toEqual([]);
    expect(await decodeMultimon(s)).toEqual([]);
    expect(await decodeMultimon(new Int16Array(0))).toEqual([]);
  });

  it('a 20 ms tone: multimon-ng finds it, spandsp does not (dtmf.md §3.4)', async () => {
    const s = soxDtmf({ digits: '5', onMs: 20, gapMs: 200, levelDbm0: -10 });
    expect(await decodeMultimon(s)).toEqual(['5']);
    expect(await decodeSpandsp(s)).toEqual([]);
  });

  it('spandsp threshold option: −45 dBm0 is below the default −42 but above the wide −50', async () => {
    const s = soxDtmf({ digits: '159#', onMs: 60, gapMs: 60, levelDbm0: -45 });
    expect(await decodeSpandsp(s)).toEqual([]);
    expect((await decodeSpandsp(s, SPANDSP_WIDE)).map((d) => d.digit).join('')).toBe('159#');
    await expect(decodeSpandsp(s, { thresholdDbm0: -42.5 })).rejects.toThrow(RangeError);
  });

  it('reports a tone that runs to the very end of the input', async () => {
    const s = soxDtmf({ digits: '7', onMs: 60, gapMs: 0, levelDbm0: -10 });
    const sp = await decodeSpandsp(s);
    expect(sp.map((d) => d.digit)).toEqual(['7']);
    expect(sp[0]?.offMs).toBeGreaterThan(160);
  });

  it('spandspCost reports the samples processed and a CPU time', async () => {
    const s = soxDtmf({ digits: ALL, onMs: 50, gapMs: 50, levelDbm0: -10 });
    const cost = await spandspCost(s);
    expect(cost.samples).toBe(s.length);
    expect(cost.audioSeconds).toBeCloseTo(s.length / FS, 6);
    expect(cost.cpuSeconds).toBeGreaterThan(0);
    expect(cost.processCpuSeconds).toBeGreaterThanOrEqual(cost.cpuSeconds);
  });

  it('run concurrently without mixing results', async () => {
    const inputs = ['123', '456', '789', '*0#', 'ABCD'].map((digits) => soxDtmf({ digits, onMs: 60, gapMs: 60, levelDbm0: -12 }));
    const results = await Promise.all(
      inputs.flatMap((s) => [decodeSpandsp(s).then((r) => r.map((d) => d.digit).join('')), decodeMultimon(s).then((r) => r.join(''))]),
    );
    expect(results).toEqual(['123', '123', '456', '456', '789', '789', '*0#', '*0#', 'ABCD', 'ABCD']);
  });

  it('stream 10 minutes of audio without a pipe deadlock', async () => {
    // 16 digits, one every 37.5 s, in 10 minutes of low-level noise-free silence
    const long = new Int16Array(600 * FS);
    const tones = soxDtmf({ digits: ALL, onMs: 60, gapMs: 0, leadMs: 0, levelDbm0: -10 });
    const on = msToSamples(60);
    for (let i = 0; i < ALL.length; i++) long.set(tones.subarray(i * on, (i + 1) * on), Math.round((i * 37.5 + 5) * FS));
    const [mm, sp] = await Promise.all([decodeMultimon(long), decodeSpandsp(long)]);
    expect(mm.join('')).toBe(ALL);
    expect(sp.map((d) => d.digit).join('')).toBe(ALL);
    expect(sp[15]?.onMs).toBeGreaterThan((15 * 37.5 + 5) * 1000);
  });
});

describe('P.56 active speech level', () => {
  it('equals the rms level for a steady sine', () => {
    for (const level of [-3, -20, -40]) {
      const s = sine(1004, level, 4);
      expect(activeSpeechLevelDbm0(s)).toBeCloseTo(level, 1);
      expect(rmsLevelDbm0(s)).toBeCloseTo(level, 1);
      expect(activeSpeechLevel(s).activity).toBeGreaterThan(0.98);
    }
  });

  it('counts silence only within the 0.2 s hangover: a 1 s burst in 4 s', () => {
    const s = concatPcm([new Int16Array(FS), sine(800, -15, 1), new Int16Array(2 * FS)]);
    const r = activeSpeechLevel(s);
    // active = 1 s of tone + 0.2 s hangover + the envelope's decay to the threshold
    const activeSeconds = r.activity * 4;
    expect(activeSeconds).toBeGreaterThan(1.2);
    expect(activeSeconds).toBeLessThan(1.45);
    expect(r.activeDbm0).toBeCloseTo(-15 - 10 * Math.log10(activeSeconds), 1);
    expect(r.rmsDbm0).toBeCloseTo(-15 + 10 * Math.log10(0.25), 1);
    expect(r.thresholdDbm0).toBeCloseTo(r.activeDbm0 - 15.9, 6);
  });

  it('gives speech with 2 s of silence appended the same active level, while its rms drops', () => {
    const en = naturalSpeechFiles().find((s) => s.language === 'en');
    expect(en).toBeDefined();
    const speech = concatPcm((en?.files ?? []).slice(0, 12).map(readPcm16Wav));
    expect(speech.length).toBeGreaterThan(15 * FS);
    const padded = concatPcm([speech, new Int16Array(2 * FS)]);
    const a = activeSpeechLevel(speech);
    const b = activeSpeechLevel(padded);
    expect(Math.abs(a.activeDbm0 - b.activeDbm0)).toBeLessThan(0.1);
    expect(a.rmsDbm0 - b.rmsDbm0).toBeGreaterThan(0.2);
    expect(b.activity).toBeLessThan(a.activity);
  });

  it('scaleToActiveLevel hits the target', () => {
    const en = naturalSpeechFiles().find((s) => s.language === 'en');
    const speech = concatPcm((en?.files ?? []).slice(0, 5).map(readPcm16Wav));
    for (const target of [-14, -26]) {
      const scaled = scaleToActiveLevel(speech, target);
      expect(scaled).not.toBe(speech);
      expect(activeSpeechLevelDbm0(scaled)).toBeCloseTo(target, 1);
    }
    expect(() => scaleToActiveLevel(new Int16Array(100), -14)).toThrow(RangeError);
  });
});

describe('mix and PRNG', () => {
  it('mix sums with clipping and an offset', () => {
    const a = Int16Array.from([1000, 30000, -30000]);
    const b = Int16Array.from([5, 5000, -5000, 7]);
    expect(Array.from(mix(a, b))).toEqual([1005, 32767, -32768, 7]);
    expect(Array.from(mix(a, Int16Array.from([1, 2]), 2))).toEqual([1000, 30000, -29999, 2]);
  });

  it('mulberry32 is reproducible and seed-dependent', () => {
    const r1 = mulberry32(42);
    const r2 = mulberry32(42);
    const r3 = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => r1());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => r2()));
    expect(xs.slice(0, 10)).not.toEqual(Array.from({ length: 10 }, () => r3()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});

describe('corpora', () => {
  it('lists natural speech in five languages, sorted and deterministic', () => {
    const sets = naturalSpeechFiles();
    expect(sets.map((s) => s.language)).toEqual(['en', 'es', 'fr', 'it', 'ru']);
    for (const s of sets) {
      expect(s.files.length).toBeGreaterThan(100);
      expect(s.files.every((f) => f.endsWith('.wav') && !f.includes('/silence/'))).toBe(true);
    }
    expect(naturalSpeechFiles()).toEqual(sets);
  });

  it('reads WAVs exactly as sox does', () => {
    const file = naturalSpeechFiles()[1]?.files[7];
    expect(file).toBeDefined();
    const mine = readPcm16Wav(file ?? '');
    const viaSox = execFileSync('sox', ['-V1', file ?? '', '-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-']);
    expect(mine.length).toBe(viaSox.length / 2);
    expect(Buffer.from(mine.buffer, mine.byteOffset, mine.byteLength).equals(viaSox)).toBe(true);
    expect(rmsLevelDbm0(mine)).toBeGreaterThan(-40);
  });

  it('has music on hold at 8 kHz', () => {
    const moh = musicOnHold();
    expect(moh.length).toBeGreaterThan(0);
    for (const m of moh) {
      expect(m.samples.length).toBeGreaterThan(30 * FS);
      expect(activeSpeechLevelDbm0(m.samples)).toBeGreaterThan(-40);
    }
  });

  it('makes a 3–4 minute espeak-ng corpus of 10 voices × 4 pitches at a plausible level', () => {
    const corpus = espeakCorpus();
    expect(corpus.length).toBe(40);
    expect(new Set(corpus.map((c) => c.voice)).size).toBe(10);
    expect([...new Set(corpus.map((c) => c.pitch))].sort((a, b) => a - b)).toEqual([30, 50, 80, 99]);
    const all = concatPcm(corpus.map((c) => c.samples));
    expect(all.length / FS / 60).toBeGreaterThan(3);
    expect(all.length / FS / 60).toBeLessThan(4.5);
    const level = activeSpeechLevelDbm0(all);
    expect(level).toBeGreaterThan(-30);
    expect(level).toBeLessThan(-6);
    for (const c of corpus) expect(activeSpeechLevelDbm0(c.samples)).toBeGreaterThan(-35);
    // cached and deterministic
    const again = espeakSpeech({ text: corpus[0]?.text ?? '', voice: corpus[0]?.voice ?? '', pitch: 30, speed: 150 });
    expect(again).toEqual(corpus[0]?.samples);
  });

  it('band-limits synthetic speech to the telephone band', () => {
    const s = espeakSpeech({ text: 'Please enter your card number now.', voice: 'en-us' });
    // share of the energy below 200 Hz and above 3600 Hz, by DFT (Parseval); espeak-ng's own
    // output has about −13 dB below 200 Hz and −25 dB above 3600 Hz
    const n = s.length;
    const power = (k: number): number => {
      let re = 0;
      let im = 0;
      const w = (2 * Math.PI * k) / n;
      for (let i = 0; i < n; i++) {
        re += (s[i] ?? 0) * Math.cos(w * i);
        im -= (s[i] ?? 0) * Math.sin(w * i);
      }
      return re * re + im * im;
    };
    let total = 0;
    for (const x of s) total += x * x;
    const band = (from: number, to: number): number => {
      let e = 0;
      for (let k = Math.ceil((from * n) / FS); k < (to * n) / FS; k++) e += (k === 0 ? 1 : 2) * power(k);
      return 10 * Math.log10(e / n / total);
    };
    expect(band(0, 200)).toBeLessThan(-30);
    expect(band(3600, 4000)).toBeLessThan(-40);
  });

  const hasFlite = spawnSync('flite', ['-lv']).status === 0;
  it.skipIf(!hasFlite)('makes flite speech (when flite is installed)', () => {
    const s = fliteSpeech('Your payment has been received.');
    expect(s.length).toBeGreaterThan(FS);
    expect(activeSpeechLevelDbm0(s)).toBeGreaterThan(-35);
  });
});
