import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decode, decodeTable, encode, encodeSample, type G711Law } from '../../src/media/g711.ts';

const allCodes = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('G.711', () => {
  it('decodes the ITU-T G.191 reference end points and zero codes', () => {
    const mu = decodeTable('pcmu');
    const a = decodeTable('pcma');
    // G.191 ulaw_expand: 0x00 and 0x80 are the extremes, 0xFF and 0x7F the two zeros.
    expect([mu[0x00], mu[0x80], mu[0xff], mu[0x7f], mu[0x7e], mu[0xfe]]).toEqual([-32124, 32124, 0, 0, -8, 8]);
    // G.191 alaw_expand: 0xD5/0x55 are the smallest magnitudes (±8), 0xAA/0x2A the largest.
    expect([a[0xd5], a[0x55], a[0xaa], a[0x2a], a[0xd4], a[0x54]]).toEqual([8, -8, 32256, -32256, 24, -24]);
  });

  it.each<G711Law>(['pcmu', 'pcma'])('%s: every code round-trips through decode and encode', (law) => {
    const linear = decode(law, allCodes);
    const again = encode(law, linear);
    for (let code = 0; code < 256; code++) {
      // μ-law has two codes for zero (0x7F, 0xFF); the encoder answers the positive one.
      const expected = law === 'pcmu' && code === 0x7f ? 0xff : code;
      expect(again[code], `code 0x${code.toString(16)}`).toBe(expected);
    }
  });

  it.each<G711Law>(['pcmu', 'pcma'])('%s: encoding is monotonic and within half a step of every sample', (law) => {
    const levels = decodeTable(law);
    // G.191 drops 2 (μ-law) or 4 (A-law) low bits before quantizing.
    const truncation = law === 'pcmu' ? 3 : 15;
    const clip = law === 'pcmu' ? 32124 : 32256;
    let previous = -Infinity;
    for (let s = -32768; s <= 32767; s++) {
      const code = encodeSample(law, s);
      const level = levels[code]!;
      expect(level >= previous, `monotonic at ${s}`).toBe(true);
      previous = level;
      if (Math.abs(s) >= clip) continue;
      // the step of the chosen segment: distance to the neighbouring level of the same segment
      const neighbour = levels[code ^ 1]!;
      const halfStep = Math.abs(neighbour - level) / 2;
      if (Math.abs(level - s) > halfStep + truncation) throw new Error(`${law}: sample ${s} → ${level}, half step ${halfStep}`);
    }
  });

  it.each<[G711Law, string]>([['pcmu', 'u-law'], ['pcma', 'a-law']])('%s: decode agrees with sox on all 256 codes', (law, soxEncoding) => {
    const dir = mkdtempSync(join(tmpdir(), 'g711-'));
    writeFileSync(join(dir, 'in.raw'), allCodes);
    execFileSync('sox', ['-t', 'raw', '-r', '8000', '-c', '1', '-e', soxEncoding, '-b', '8', join(dir, 'in.raw'),
      '-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', join(dir, 'out.raw')]);
    const sox = readFileSync(join(dir, 'out.raw'));
    const ours = decode(law, allCodes);
    for (let code = 0; code < 256; code++) expect(ours[code], `code ${code}`).toBe(sox.readInt16LE(code * 2));
  });
});
