/**
 * G.711 μ-law and A-law (ITU-T G.711, 11/88), table driven.
 *
 * Decoding is one 256-entry table per law. Encoding is one table per law indexed by the
 * linear sample with its low bits dropped (μ-law works on 14-bit magnitudes, A-law on 13-bit),
 * which reproduces the ITU-T G.191 reference encoder (`linear2ulaw`, `linear2alaw`) exactly.
 *
 * Linear samples are 16-bit two's complement, as in ITU-T G.191: μ-law decodes to
 * ±32124 at most, A-law to ±32256.
 */

export type G711Law = 'pcmu' | 'pcma';

/** RTP static payload types for the two laws (RFC 3551 §6). */
export const PAYLOAD_TYPE: Readonly<Record<G711Law, number>> = { pcmu: 0, pcma: 8 };

/** The byte each law uses for digital silence (linear 0, or as near as the law gets). */
export const SILENCE_BYTE: Readonly<Record<G711Law, number>> = { pcmu: 0xff, pcma: 0xd5 };

// The four functions below follow the ITU-T G.191 reference (STL `g711.c`: ulaw_compress,
// ulaw_expand, alaw_compress, alaw_expand), one sample at a time; the tables are built from them.

function ulawEncodeSample(sample: number): number {
  // 14-bit magnitude (one's complement for negatives) plus the bias of 33.
  let magnitude = (sample < 0 ? ~sample >> 2 : sample >> 2) + 33;
  if (magnitude > 0x1fff) magnitude = 0x1fff;
  let segment = 1;
  for (let i = magnitude >> 6; i !== 0; i >>= 1) segment++;
  const highNibble = 0x08 - segment;
  const lowNibble = 0x0f - ((magnitude >> segment) & 0x0f);
  const code = (highNibble << 4) | lowNibble;
  return sample >= 0 ? code | 0x80 : code;
}

function ulawDecodeByte(code: number): number {
  const sign = code < 0x80 ? -1 : 1;
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const step = 4 << (exponent + 1);
  const mantissa = inverted & 0x0f;
  return sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33);
}

function alawEncodeSample(sample: number): number {
  // 12-bit magnitude (one's complement for negatives); even bits inverted on the line (0x55).
  let magnitude = sample < 0 ? ~sample >> 4 : sample >> 4;
  if (magnitude > 15) {
    let exponent = 1;
    while (magnitude > 16 + 15) {
      magnitude >>= 1;
      exponent++;
    }
    magnitude = magnitude - 16 + (exponent << 4);
  }
  if (sample >= 0) magnitude |= 0x80;
  return magnitude ^ 0x55;
}

function alawDecodeByte(code: number): number {
  const value = (code ^ 0x55) & 0x7f;
  const exponent = value >> 4;
  let mantissa = value & 0x0f;
  if (exponent > 0) mantissa += 16;
  mantissa = (mantissa << 4) + 0x08;
  if (exponent > 1) mantissa <<= exponent - 1;
  return code > 127 ? mantissa : -mantissa;
}

function buildDecodeTable(decode: (code: number) => number): Int16Array {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) table[code] = decode(code);
  return table;
}

/** Encoding tables are indexed by `(sample + 32768) >> shift`; shift drops the bits the law ignores. */
const ULAW_ENCODE_SHIFT = 2;
const ALAW_ENCODE_SHIFT = 4;

function buildEncodeTable(encode: (sample: number) => number, shift: number): Uint8Array {
  const table = new Uint8Array(65536 >> shift);
  for (let i = 0; i < table.length; i++) table[i] = encode((i << shift) - 32768);
  return table;
}

const ULAW_DECODE = buildDecodeTable(ulawDecodeByte);
const ALAW_DECODE = buildDecodeTable(alawDecodeByte);
const ULAW_ENCODE = buildEncodeTable(ulawEncodeSample, ULAW_ENCODE_SHIFT);
const ALAW_ENCODE = buildEncodeTable(alawEncodeSample, ALAW_ENCODE_SHIFT);

/** The 256-entry decode table of a law (read-only by convention; shared). */
export function decodeTable(law: G711Law): Int16Array {
  return law === 'pcmu' ? ULAW_DECODE : ALAW_DECODE;
}

function clampIndex(sample: number, shift: number): number {
  const s = sample < -32768 ? -32768 : sample > 32767 ? 32767 : sample | 0;
  return (s + 32768) >> shift;
}

/** Encodes one 16-bit linear sample (values outside the range are clipped). */
export function encodeSample(law: G711Law, sample: number): number {
  return law === 'pcmu'
    ? ULAW_ENCODE[clampIndex(sample, ULAW_ENCODE_SHIFT)]!
    : ALAW_ENCODE[clampIndex(sample, ALAW_ENCODE_SHIFT)]!;
}

/** Decodes G.711 bytes into `out` (which must be at least as long) and returns `out`. */
export function decode(law: G711Law, bytes: Uint8Array, out: Int16Array = new Int16Array(bytes.length)): Int16Array {
  const table = decodeTable(law);
  for (let i = 0; i < bytes.length; i++) out[i] = table[bytes[i]!]!;
  return out;
}

/** Encodes 16-bit linear samples into `out` (at least as long) and returns `out`. */
export function encode(law: G711Law, samples: ArrayLike<number>, out: Uint8Array = new Uint8Array(samples.length)): Uint8Array {
  const shift = law === 'pcmu' ? ULAW_ENCODE_SHIFT : ALAW_ENCODE_SHIFT;
  const table = law === 'pcmu' ? ULAW_ENCODE : ALAW_ENCODE;
  for (let i = 0; i < samples.length; i++) out[i] = table[clampIndex(samples[i]!, shift)]!;
  return out;
}
