import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CallRecorder } from '../../src/media/recorder.ts';
import { readWav } from '../../src/media/wav.ts';
import { run } from '../support/hushpay.ts';

const dir = mkdtempSync(join(tmpdir(), 'rec-'));

describe('CallRecorder', () => {
  it('interleaves the two directions into a stereo G.711 WAV, aligned as they arrive', async () => {
    const rec = await CallRecorder.open(join(dir, 'a.wav'), 'pcmu', 480);
    for (let i = 0; i < 10; i++) {
      rec.left(new Uint8Array(160).fill(0x10 + i));
      rec.right(new Uint8Array(160).fill(0x80 + i));
    }
    await rec.close();
    const wav = readWav(readFileSync(join(dir, 'a.wav')));
    expect(wav).toMatchObject({ format: 'pcmu', channels: 2, sampleRateHz: 8000, frames: 1600 });
    expect([wav.data[0], wav.data[1], wav.data[2 * 160 * 9], wav.data[2 * 160 * 9 + 1]]).toEqual([0x10, 0x80, 0x19, 0x89]);
  });

  it('keeps every byte in order through many ring wraps, whatever the chunking of each side', async () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const total = 40_000;
    const left = Uint8Array.from({ length: total }, () => Math.floor(random() * 256));
    const right = Uint8Array.from({ length: total }, () => Math.floor(random() * 256));
    const rec = await CallRecorder.open(join(dir, 'wraps.wav'), 'pcmu', 400);
    let l = 0;
    let r = 0;
    while (l < total || r < total) {
      // the side behind pushes the next chunk (1–300 bytes), so the skew stays under 400
      const size = 1 + Math.floor(random() * 300);
      if ((l <= r && l < total) || r >= total) {
        rec.left(left.subarray(l, Math.min(total, l + size)));
        l = Math.min(total, l + size);
      } else {
        rec.right(right.subarray(r, Math.min(total, r + size)));
        r = Math.min(total, r + size);
      }
    }
    await rec.close();
    const wav = readWav(readFileSync(join(dir, 'wraps.wav')));
    expect(wav.frames).toBe(total);
    const expected = new Uint8Array(2 * total);
    for (let i = 0; i < total; i++) {
      expected[2 * i] = left[i]!;
      expected[2 * i + 1] = right[i]!;
    }
    expect(Buffer.from(wav.data).equals(Buffer.from(expected))).toBe(true);
  });

  it('fills a silent direction with silence once it falls behind, and pads the shorter at close', async () => {
    const rec = await CallRecorder.open(join(dir, 'b.wav'), 'pcma', 320);
    for (let i = 0; i < 10; i++) rec.left(new Uint8Array(160).fill(0x11)); // the agent on hold: nothing on the right
    expect(rec.frames).toBe(1600 - 320); // all but the allowed skew already written
    rec.right(new Uint8Array(80).fill(0x22));
    await rec.close();
    await rec.close();
    const wav = readWav(readFileSync(join(dir, 'b.wav')));
    expect(wav.frames).toBe(1600);
    // the right channel: A-law silence (0xD5) where the agent was silent, then its 80 samples
    expect(wav.data[1]).toBe(0xd5);
    expect(wav.data[2 * (1600 - 320) + 1]).toBe(0x22);
    expect(wav.data[2 * 1599 + 1]).toBe(0xd5);
  });

  it('a disk that fills ends the recording, not the caller of left()/right(), and leaves a valid file', async () => {
    // a real failed write: the file size limit (ulimit -f, SIGXFSZ ignored so write() says EFBIG)
    const recorder = fileURLToPath(new URL('../../src/media/recorder.ts', import.meta.url));
    const path = join(dir, 'full.wav');
    const script = [
      `import { CallRecorder } from ${JSON.stringify(recorder)};`,
      `const rec = await CallRecorder.open(${JSON.stringify(path)}, 'pcmu');`,
      'for (let i = 0; i < 250; i++) { rec.left(new Uint8Array(160).fill(0x11)); rec.right(new Uint8Array(160).fill(0x22)); }', // 5 s
      'await rec.close();',
      'console.log(JSON.stringify({ error: rec.error?.message }));',
    ].join('\n');
    const result = await run('bash', ['-c', `trap '' XFSZ; ulimit -f 40; exec "${process.execPath}" --input-type=module -e "$0"`, script], { timeoutMs: 30_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).error).toMatch(/EFBIG/);
    const wav = readWav(readFileSync(path));
    // four whole 0.5 s blocks fit in 40 KiB; the header says so and nothing half-written follows
    expect(wav.frames).toBe(4 * 4096);
    expect(statSync(path).size).toBe(58 + 4 * 8192); // the header, four blocks, and the partial fifth cut off
    expect([wav.data[0], wav.data[1], wav.data[4 * 8192 - 1]]).toEqual([0x11, 0x22, 0x22]);
  });
});
