import { describe, expect, it } from 'vitest';
import { ALL_DIGITS, dbm0ToRms, powerToDbm0 } from '../../src/media/dtmf/frequencies.ts';
import { ComfortNoise, FLAT_BEEP_HZ, FlatBeep, addDtmfTone, toInt16 } from '../../src/media/dtmf/tones.ts';
import { decodeMultimon, decodeSpandsp } from '../support/referees.ts';
import { soxDtmf } from '../support/soxgen.ts';

const levelDbm0 = (s: ArrayLike<number>, from = 0, to = s.length): number => {
  let sum = 0;
  for (let i = from; i < to; i++) sum += s[i]! * s[i]!;
  return powerToDbm0(sum / (to - from));
};

describe('tone generator', () => {
  it('makes DTMF at the same level as sox does, and the referees read every digit', async () => {
    for (const [level, twist] of [[-10, 0], [-20, 4], [-6, -8]] as const) {
      const ours = new Float64Array(800);
      addDtmfTone(ours, 0, 800, '5', { levelDbm0: level, twistDb: twist });
      const sox = soxDtmf({ digits: '5', onMs: 100, gapMs: 0, leadMs: 0, levelDbm0: level, twistDb: twist });
      expect(Math.abs(levelDbm0(ours) - levelDbm0(sox))).toBeLessThan(0.1);
    }
    const signal = new Float64Array(8000 * 4);
    ALL_DIGITS.forEach((digit, i) => addDtmfTone(signal, 800 + i * 1600, 640, digit, { levelDbm0: -10 }));
    const pcm = toInt16(signal);
    expect((await decodeMultimon(pcm)).join('')).toBe(ALL_DIGITS.join(''));
    expect((await decodeSpandsp(pcm)).map((d) => d.digit).join('')).toBe(ALL_DIGITS.join(''));
  });

  it('makes a flat beep that is one 1 kHz tone, and comfort noise at its level', async () => {
    const beep = new FlatBeep();
    const samples = Float64Array.from({ length: 8000 }, () => beep.next(1));
    // one sinusoid: its energy at 1 kHz is all of its energy
    let re = 0;
    let im = 0;
    for (let n = 0; n < samples.length; n++) {
      re += samples[n]! * Math.cos((2 * Math.PI * FLAT_BEEP_HZ * n) / 8000);
      im -= samples[n]! * Math.sin((2 * Math.PI * FLAT_BEEP_HZ * n) / 8000);
    }
    const toneEnergy = (2 * (re * re + im * im)) / samples.length;
    const total = samples.reduce((s, v) => s + v * v, 0);
    expect(toneEnergy / total).toBeGreaterThan(0.999);
    expect(await decodeMultimon(toInt16(samples))).toEqual([]);
    const noise = new ComfortNoise(1, -55);
    const n = Float64Array.from({ length: 80_000 }, () => noise.next());
    expect(Math.abs(levelDbm0(n) - -55)).toBeLessThan(0.2);
    expect(dbm0ToRms(0)).toBe(16174);
  });
});
