// The benchmark's rtpengine yardstick (test/bench/rtpengine.ts): a real rtpengine child, 3 s of
// sox-made audio with two digits, delay-buffer 40. The output must come back sample-aligned with
// the input and masked, as graded by multimon-ng (never by hushpay). Skipped when rtpengine is
// missing or cannot start here.

import { describe, expect, it } from 'vitest';
import { decode, encode } from '../../src/media/g711.ts';
import { decodeMultimon } from '../support/referees.ts';
import { msToSamples, soxDtmf } from '../support/soxgen.ts';
import { maskedSpansOf, rtpengineAvailable, runRtpengine } from './rtpengine.ts';

describe('maskedSpansOf', () => {
  it('returns [start, end) runs of changed samples, merging gaps under 10 samples', () => {
    const input = new Uint8Array(100).fill(0x80);
    const output = Uint8Array.from(input);
    output.fill(0xff, 10, 20);
    output.fill(0xff, 29, 31); // 9 unchanged samples after the first run: merged
    output.fill(0xff, 41, 45); // 10 unchanged samples: a new span
    expect(maskedSpansOf(input, output)).toEqual([
      [10, 31],
      [41, 45],
    ]);
    expect(maskedSpansOf(input, input)).toEqual([]);
  });

  it('treats the two μ-law zeros as equal (rtpengine re-encodes 0x7F as 0xFF)', () => {
    const input = new Uint8Array([0x7f, 0x7f, 0x10]);
    expect(maskedSpansOf(input, new Uint8Array([0xff, 0x7f, 0x10]))).toEqual([]);
    expect(maskedSpansOf(input, new Uint8Array([0xff, 0x7f, 0x11]))).toEqual([[2, 3]]);
  });
});

const availability = rtpengineAvailable();
const title = availability.ok ? 'rtpengine in-band DTMF masking' : `rtpengine in-band DTMF masking (skipped: ${availability.why})`;

describe.skipIf(!availability.ok)(title, () => {
  it('masks two digits at delay-buffer 40 and returns the output sample-aligned with the input', async () => {
    const LEAD_MS = 1000;
    const ON_MS = 80;
    const GAP_MS = 920;
    // 3 s: tones at 1000–1080 ms and 2000–2080 ms, white noise everywhere so a slip of one
    // sample would change almost every sample.
    const signal = soxDtmf({ digits: '59', onMs: ON_MS, gapMs: GAP_MS, leadMs: LEAD_MS, levelDbm0: -10, noiseDbm0: -45 });
    const input = encode('pcmu', signal);
    expect(input.length).toBe(msToSamples(3000));
    expect(await decodeMultimon(decode('pcmu', input))).toEqual(['5', '9']);

    const run = await runRtpengine(input, { delayBufferMs: 40, security: 'silence' });

    expect(run.output.length).toBe(input.length);
    expect(run.packets).toEqual({ sent: 150, received: 150 });
    expect(run.delayBufferMs).toBe(40);
    // rtpengine 10.5.3.5 keeps the RTP timestamps, so placing by timestamp already aligns.
    expect(run.lagSamples).toBe(0);
    // The delay buffer delays every packet in time (a loaded machine adds a few ms).
    expect(run.addedLatencyMs).toBeGreaterThanOrEqual(39);
    expect(run.addedLatencyMs).toBeLessThan(100);

    // Masked and aligned: exactly one changed span per tone, covering the whole tone and at
    // most 200 ms beyond it (misaligned noise would differ nearly everywhere: one huge span).
    const spans = maskedSpansOf(input, run.output);
    expect(spans).toHaveLength(2);
    for (const [i, [start, end]] of spans.entries()) {
      const toneStart = msToSamples(LEAD_MS + i * (ON_MS + GAP_MS));
      const toneEnd = toneStart + msToSamples(ON_MS);
      expect(start).toBeLessThanOrEqual(toneStart);
      expect(end).toBeGreaterThanOrEqual(toneEnd);
      expect(end - start).toBeLessThan(msToSamples(ON_MS + 200));
    }
    expect(await decodeMultimon(decode('pcmu', run.output))).toEqual([]);
  });
});
