import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidStateError, MediaConfigError, WavFormatError } from '../../src/errors.ts';
import { decode, encode } from '../../src/media/g711.ts';
import {
  decodeWavToInt16,
  encodeInt16ToWavData,
  readWav,
  type WavParams,
  type WavSampleFormat,
  WavFileWriter,
  writeWav,
} from '../../src/media/wav.ts';

const dir = mkdtempSync(join(tmpdir(), 'wav-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;
function tempPath(name: string): string {
  return join(dir, `${fileCounter++}-${name}`);
}
/** File contents as a plain Uint8Array (a Buffer's subarrays are Buffers, which toEqual tells apart). */
function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

// --- hand-built RIFF files -------------------------------------------------------------------

function u16(value: number): number[] {
  return [value & 0xff, (value >> 8) & 0xff];
}
function u32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}
function ascii(text: string): number[] {
  return [...text].map((c) => c.charCodeAt(0));
}
/** A chunk with its pad byte; `declaredSize` lets a test lie about the size. */
function chunk(id: string, body: readonly number[], declaredSize = body.length): number[] {
  return [...ascii(id), ...u32(declaredSize), ...body, ...(body.length & 1 ? [0] : [])];
}
function riff(...chunks: number[][]): Uint8Array {
  const body = chunks.flat();
  return Uint8Array.from([...ascii('RIFF'), ...u32(4 + body.length), ...ascii('WAVE'), ...body]);
}
interface Fmt { tag: number; channels: number; rate: number; byteRate: number; blockAlign: number; bits: number }
const STEREO_PCM16: Fmt = { tag: 1, channels: 2, rate: 8000, byteRate: 32000, blockAlign: 4, bits: 16 };
function fmtBody(f: Fmt): number[] {
  return [...u16(f.tag), ...u16(f.channels), ...u32(f.rate), ...u32(f.byteRate), ...u16(f.blockAlign), ...u16(f.bits)];
}
const FRAMES_16 = Array.from({ length: 16 }, (_, i) => i + 1); // four stereo 16-bit frames

describe('writeWav', () => {
  it('writes the canonical 44-byte header for 16-bit PCM', () => {
    const data = Uint8Array.from(FRAMES_16);
    const file = writeWav({ format: 'pcm16', sampleRateHz: 8000, channels: 2 }, data);
    expect(file).toEqual(riff(chunk('fmt ', fmtBody(STEREO_PCM16)), chunk('data', FRAMES_16)));
    expect(file.length).toBe(44 + 16);
  });

  it('writes G.711 with an 18-byte fmt (cbSize 0), a fact chunk, and a pad byte after odd data', () => {
    const data = Uint8Array.of(0xff, 0x7f, 0x00);
    const file = writeWav({ format: 'pcmu', sampleRateHz: 16000, channels: 1 }, data);
    const fmt18 = [...fmtBody({ tag: 7, channels: 1, rate: 16000, byteRate: 16000, blockAlign: 1, bits: 8 }), ...u16(0)];
    expect(file).toEqual(riff(chunk('fmt ', fmt18), chunk('fact', u32(3)), chunk('data', [...data])));
    expect(file.length).toBe(58 + 3 + 1);
    expect(readWav(file)).toMatchObject({ format: 'pcmu', sampleRateHz: 16000, channels: 1, frames: 3, data });
  });

  it.each<[string, WavParams, number]>([
    ['3 channels', { format: 'pcm16', sampleRateHz: 8000, channels: 3 }, 0],
    ['0 channels', { format: 'pcma', sampleRateHz: 8000, channels: 0 }, 0],
    ['sample rate 0', { format: 'pcm16', sampleRateHz: 0, channels: 1 }, 0],
    ['fractional sample rate', { format: 'pcm16', sampleRateHz: 8000.5, channels: 1 }, 0],
    ['an unknown format', { format: 'gsm' as WavSampleFormat, sampleRateHz: 8000, channels: 1 }, 0],
    ['half a 16-bit sample', { format: 'pcm16', sampleRateHz: 8000, channels: 1 }, 3],
    ['half a stereo G.711 frame', { format: 'pcma', sampleRateHz: 8000, channels: 2 }, 5],
  ])('refuses %s with MediaConfigError', (_name, params, dataBytes) => {
    expect(() => writeWav(params, new Uint8Array(dataBytes))).toThrow(MediaConfigError);
  });
});

describe('readWav', () => {
  it('reads what writeWav wrote, returning the data as a view into the file', () => {
    const file = writeWav({ format: 'pcm16', sampleRateHz: 44100, channels: 2 }, Uint8Array.from(FRAMES_16));
    const wav = readWav(file);
    expect(wav).toEqual({ format: 'pcm16', sampleRateHz: 44100, channels: 2, frames: 4, data: Uint8Array.from(FRAMES_16) });
    expect(wav.data.buffer).toBe(file.buffer);
    expect(wav.data.byteOffset).toBe(44);
  });

  it('skips unknown chunks, honouring the pad byte after an odd-sized one', () => {
    const list = chunk('LIST', ascii('INFOISFT'.padEnd(13, 'x'))); // 13 bytes + pad
    const file = riff(list, chunk('fmt ', fmtBody(STEREO_PCM16)), chunk('junk', [1, 2, 3]), chunk('data', FRAMES_16), chunk('LIST', [9, 9]));
    expect(readWav(file)).toMatchObject({ format: 'pcm16', frames: 4, data: Uint8Array.from(FRAMES_16) });
  });

  it('reads a fmt chunk longer than 16 bytes, and a data chunk before the fmt chunk', () => {
    const fmt18 = [...fmtBody({ tag: 6, channels: 2, rate: 8000, byteRate: 16000, blockAlign: 2, bits: 8 }), ...u16(0)];
    const file = riff(chunk('data', [0xd5, 0x55, 0xaa, 0x2a]), chunk('fmt ', fmt18));
    expect(readWav(file)).toMatchObject({ format: 'pcma', channels: 2, frames: 2 });
  });

  it.each([0, 0xffffffff])('takes the rest of the file when a streaming recorder left data size %i, dropping a partial frame', (declared) => {
    const file = riff(chunk('fmt ', fmtBody(STEREO_PCM16)), chunk('data', [...FRAMES_16, 17, 18], declared));
    const wav = readWav(file);
    expect(wav.frames).toBe(4);
    expect(wav.data).toEqual(Uint8Array.from(FRAMES_16));
    expect(readWav(riff(chunk('fmt ', fmtBody(STEREO_PCM16)), chunk('data', [], declared))).frames).toBe(0);
  });

  const fmt = (override: Partial<Fmt>) => chunk('fmt ', fmtBody({ ...STEREO_PCM16, ...override }));
  const data = chunk('data', FRAMES_16);
  it.each<[string, Uint8Array, string]>([
    ['a file shorter than the RIFF header', Uint8Array.from(ascii('RIFF....WAV')), 'file has 11 bytes, fewer than the 12-byte RIFF header'],
    ['a RIFX (big-endian) file', Uint8Array.from([...ascii('RIFX'), ...u32(36), ...ascii('WAVE'), ...fmt({}), ...data]), 'not a RIFF/WAVE file'],
    ['a RIFF file that is not WAVE', Uint8Array.from([...ascii('RIFF'), ...u32(4), ...ascii('AVI ')]), 'not a RIFF/WAVE file'],
    ['no fmt chunk', riff(data), 'no fmt chunk'],
    ['no data chunk', riff(fmt({}), chunk('LIST', [1, 2, 3, 4])), 'no data chunk'],
    ['a fmt chunk of 14 bytes', riff(chunk('fmt ', fmtBody(STEREO_PCM16).slice(0, 14)), data), 'fmt chunk has 14 bytes, needs at least 16'],
    ['format tag 3 (float)', riff(fmt({ tag: 3, bits: 32, blockAlign: 8, byteRate: 64000 }), data), 'unsupported format tag 3 (supported: 1 PCM, 6 A-law, 7 μ-law)'],
    ['WAVE_FORMAT_EXTENSIBLE', riff(fmt({ tag: 0xfffe }), data), 'unsupported format tag 65534 (supported: 1 PCM, 6 A-law, 7 μ-law)'],
    ['PCM at 8 bits', riff(fmt({ bits: 8, blockAlign: 2, byteRate: 16000 }), data), '8 bits per sample, format tag 1 needs 16'],
    ['μ-law at 16 bits', riff(fmt({ tag: 7 }), data), '16 bits per sample, format tag 7 needs 8'],
    ['block align 2 for stereo 16-bit', riff(fmt({ blockAlign: 2 }), data), 'block align 2, expected 2 channels × 2 bytes = 4'],
    ['byte rate of a mono file', riff(fmt({ byteRate: 16000 }), data), 'byte rate 16000, expected 8000 Hz × 4 bytes = 32000'],
    ['0 channels', riff(fmt({ channels: 0 }), data), '0 channels, expected 1 or 2'],
    ['3 channels', riff(fmt({ channels: 3, blockAlign: 6, byteRate: 48000 }), data), '3 channels, expected 1 or 2'],
    ['sample rate 0', riff(fmt({ rate: 0, byteRate: 0 }), data), 'sample rate 0'],
    ['a data size larger than the file (truncated)', riff(fmt({}), chunk('data', FRAMES_16, 1600)), 'data chunk declares 1600 bytes, only 16 in the file'],
    ['a data size that is not whole frames', riff(fmt({}), chunk('data', FRAMES_16.slice(0, 14))), 'data chunk of 14 bytes is not a whole number of 4-byte frames'],
    ['a chunk before the data that runs past the end', riff(fmt({}), chunk('LIST', [1, 2], 4000)), 'chunk at offset 36 declares 4000 bytes, only 2 in the file'],
    ['a fmt chunk that runs past the end', riff(chunk('fmt ', fmtBody(STEREO_PCM16), 400)), 'chunk at offset 12 declares 400 bytes, only 16 in the file'],
  ])('rejects %s', (_name, file, reason) => {
    let thrown: unknown;
    try {
      readWav(file);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(WavFormatError);
    expect(thrown).toMatchObject({ code: 'HP_ERR_WAV_FORMAT', reason, message: `WAV: ${reason}` });
  });
});

describe('decodeWavToInt16 and encodeInt16ToWavData', () => {
  const left = Int16Array.from([0, 1, -1, 32767, -32768, 1000, -1000, 12345]);
  const right = Int16Array.from([5, -5, 300, -300, 8, -8, 0, 32000]);

  it('splits 16-bit stereo into channels and back, little-endian', () => {
    const bytes = encodeInt16ToWavData('pcm16', [left, right]);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0, 0, 5, 0, 1, 0, 0xfb, 0xff]);
    const wav = readWav(writeWav({ format: 'pcm16', sampleRateHz: 8000, channels: 2 }, bytes));
    expect(decodeWavToInt16(wav)).toEqual([left, right]);
  });

  it.each<'pcmu' | 'pcma'>(['pcmu', 'pcma'])('%s: encodes each channel with G.711 and decodes through g711.ts', (law) => {
    const bytes = encodeInt16ToWavData(law, [left, right]);
    expect(bytes.filter((_, i) => i % 2 === 0)).toEqual(encode(law, left));
    expect(bytes.filter((_, i) => i % 2 === 1)).toEqual(encode(law, right));
    const [l, r] = decodeWavToInt16(readWav(writeWav({ format: law, sampleRateHz: 8000, channels: 2 }, bytes)));
    expect(l).toEqual(decode(law, encode(law, left)));
    expect(r).toEqual(decode(law, encode(law, right)));
  });

  it('decodes 16-bit data at an odd byte offset (no aligned typed-array view)', () => {
    const file = new Uint8Array(1 + 44 + 4);
    file.set(writeWav({ format: 'pcm16', sampleRateHz: 8000, channels: 1 }, Uint8Array.of(0x34, 0x12, 0xff, 0xff)), 1);
    expect(decodeWavToInt16(readWav(file.subarray(1)))).toEqual([Int16Array.of(0x1234, -1)]);
  });

  it('refuses channels of different lengths, or none', () => {
    expect(() => encodeInt16ToWavData('pcm16', [left, right.subarray(1)])).toThrow(MediaConfigError);
    expect(() => encodeInt16ToWavData('pcmu', [])).toThrow(MediaConfigError);
  });
});

describe('interoperability with sox', () => {
  function soxInfo(path: string): string[] {
    return ['-t', '-r', '-c', '-b', '-e', '-s'].map((flag) => execFileSync('soxi', [flag, path], { encoding: 'utf8' }).trim());
  }
  function soxToS16(path: string): Int16Array {
    const raw = execFileSync('sox', [path, '-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-']);
    return Int16Array.from({ length: raw.length / 2 }, (_, i) => raw.readInt16LE(2 * i));
  }
  function interleave(channels: readonly Int16Array[]): Int16Array {
    const out = new Int16Array(channels.length * channels[0]!.length);
    channels.forEach((samples, c) => samples.forEach((s, i) => { out[i * channels.length + c] = s; }));
    return out;
  }
  /** A 0.1 s test signal: a 1 kHz sine on the left, a 440 Hz sine on the right. */
  function signal(sampleRateHz: number, channels: number): Int16Array[] {
    const frames = sampleRateHz / 10;
    return [1000, 440].slice(0, channels)
      .map((hz) => Int16Array.from({ length: frames }, (_, i) => Math.round(20000 * Math.sin((2 * Math.PI * hz * i) / sampleRateHz))));
  }

  it.each<[WavSampleFormat, number, number, string[]]>([
    ['pcm16', 8000, 2, ['wav', '8000', '2', '16', 'Signed Integer PCM', '800']],
    ['pcm16', 16000, 1, ['wav', '16000', '1', '16', 'Signed Integer PCM', '1600']],
    ['pcmu', 8000, 1, ['wav', '8000', '1', '8', 'u-law', '800']],
    ['pcma', 8000, 2, ['wav', '8000', '2', '8', 'A-law', '800']],
  ])('sox reads our %s %i Hz × %i file with the right format and samples', (format, sampleRateHz, channels, info) => {
    const samples = signal(sampleRateHz, channels);
    const path = tempPath(`ours-${format}.wav`);
    writeFileSync(path, writeWav({ format, sampleRateHz, channels }, encodeInt16ToWavData(format, samples)));
    expect(soxInfo(path)).toEqual(info);
    const expected = format === 'pcm16' ? samples : decodeWavToInt16(readWav(readBytes(path)));
    expect(soxToS16(path)).toEqual(interleave(expected));
  });

  it.each<[string, string[], WavParams]>([
    ['μ-law mono', ['-r', '8000', '-c', '1', '-e', 'mu-law'], { format: 'pcmu', sampleRateHz: 8000, channels: 1 }],
    ['A-law mono', ['-r', '8000', '-c', '1', '-e', 'a-law'], { format: 'pcma', sampleRateHz: 8000, channels: 1 }],
    ['16-bit stereo', ['-r', '8000', '-c', '2', '-e', 'signed-integer', '-b', '16'], { format: 'pcm16', sampleRateHz: 8000, channels: 2 }],
    ['16-bit mono at 11025 Hz', ['-r', '11025', '-c', '1', '-e', 'signed-integer', '-b', '16'], { format: 'pcm16', sampleRateHz: 11025, channels: 1 }],
  ])('we read a %s file sox wrote', (_name, soxFormat, params) => {
    const path = tempPath('sox.wav');
    execFileSync('sox', ['-n', ...soxFormat, path, 'synth', '0.1', 'sine', '1000', 'sine', '500']);
    const wav = readWav(readBytes(path));
    expect(wav).toMatchObject({ ...params, frames: Math.round(params.sampleRateHz / 10) });
    expect(interleave(decodeWavToInt16(wav))).toEqual(soxToS16(path));
  });

  it('we read a file sox wrote after a LIST chunk of odd size is spliced in before its data', () => {
    const path = tempPath('sox-list.wav');
    execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-e', 'mu-law', path, 'synth', '0.05', 'sine', '1000']);
    const original = readBytes(path);
    const dataOffset = Buffer.from(original).indexOf('data');
    const list = chunk('LIST', ascii('INFOICMT\x05\x00\x00\x00test!')); // 17 bytes + pad
    const spliced = Uint8Array.from([...original.subarray(0, dataOffset), ...list, ...original.subarray(dataOffset)]);
    new DataView(spliced.buffer).setUint32(4, spliced.length - 8, true);
    const wav = readWav(spliced);
    expect(wav.frames).toBe(400);
    expect(decodeWavToInt16(wav)[0]).toEqual(soxToS16(path));
  });
});

describe('WavFileWriter', () => {
  const params: WavParams = { format: 'pcm16', sampleRateHz: 8000, channels: 2 };

  it('streams a file that is byte for byte what writeWav writes, and closes once', async () => {
    const path = tempPath('stream.wav');
    const writer = await WavFileWriter.open(path, params);
    const reused = Uint8Array.from(FRAMES_16);
    const writes = [writer.write(reused), writer.write(Uint8Array.from(FRAMES_16, (b) => b + 100))];
    reused.fill(0); // the writer copied the bytes when write() was called
    await Promise.all(writes);
    expect(writer.frames).toBe(8);
    const closing = writer.close();
    expect(writer.close()).toBe(closing);
    await closing;
    expect(writer.closed).toBe(true);
    const expected = writeWav(params, Uint8Array.from([...FRAMES_16, ...FRAMES_16.map((b) => b + 100)]));
    expect(readBytes(path)).toEqual(expected);
  });

  it('leaves a readable recording if it is never closed (data size 0 until close)', async () => {
    const path = tempPath('crash.wav');
    const writer = await WavFileWriter.open(path, { format: 'pcmu', sampleRateHz: 8000, channels: 1 });
    await writer.write(Uint8Array.of(1, 2, 3));
    const midRecording = readWav(readBytes(path));
    expect(midRecording).toMatchObject({ format: 'pcmu', frames: 3, data: Uint8Array.of(1, 2, 3) });
    await writer.close();
    const closed = readBytes(path);
    expect(closed.length).toBe(58 + 3 + 1); // the pad byte after odd data
    expect(readWav(closed).data).toEqual(Uint8Array.of(1, 2, 3));
    expect(soxInfoSamples(path)).toBe('3');
  });

  it('rejects writes after close with InvalidStateError, and partial frames with MediaConfigError', async () => {
    const writer = await WavFileWriter.open(tempPath('reject.wav'), params);
    await expect(writer.write(new Uint8Array(6))).rejects.toThrow(MediaConfigError);
    await writer.close();
    await expect(writer.write(new Uint8Array(4))).rejects.toThrow(InvalidStateError);
    await writer.close(); // still fine
  });

  it('writeSync appends from the caller\'s buffer at once, and refuses while asynchronous writes are queued', async () => {
    const path = tempPath('sync.wav');
    const writer = await WavFileWriter.open(path, params);
    const reused = Uint8Array.from(FRAMES_16);
    writer.writeSync(reused);
    reused.fill(0); // already on its way to disk: reuse is safe
    const queued = writer.write(Uint8Array.from(FRAMES_16, (b) => b + 100));
    expect(() => writer.writeSync(Uint8Array.from(FRAMES_16))).toThrow(InvalidStateError);
    await queued;
    expect(() => writer.writeSync(new Uint8Array(6))).toThrow(MediaConfigError);
    writer.writeSync(Uint8Array.from(FRAMES_16, (b) => b + 50));
    await writer.close();
    expect(() => writer.writeSync(Uint8Array.from(FRAMES_16))).toThrow(InvalidStateError);
    const expected = writeWav(params, Uint8Array.from([...FRAMES_16, ...FRAMES_16.map((b) => b + 100), ...FRAMES_16.map((b) => b + 50)]));
    expect(readBytes(path)).toEqual(expected);
  });

  it('never overwrites an existing file', async () => {
    const path = tempPath('existing.wav');
    writeFileSync(path, 'keep me');
    await expect(WavFileWriter.open(path, params)).rejects.toThrow(/EEXIST/);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('takes over a file handle, truncating what the file held before', async () => {
    const path = tempPath('handle.wav');
    writeFileSync(path, new Uint8Array(500).fill(0xee));
    const writer = await WavFileWriter.fromFileHandle(await open(path, 'r+'), params);
    await writer.write(Uint8Array.from(FRAMES_16));
    await writer.close();
    expect(readBytes(path)).toEqual(writeWav(params, Uint8Array.from(FRAMES_16)));
  });

  it('closes a handle it was given when it cannot take it (bad parameters)', async () => {
    const handle = await open(tempPath('bad-params.wav'), 'w');
    await expect(WavFileWriter.fromFileHandle(handle, { ...params, channels: 3 })).rejects.toThrow(MediaConfigError);
    expect(handle.fd).toBe(-1);
  });

  function soxInfoSamples(path: string): string {
    return execFileSync('soxi', ['-s', path], { encoding: 'utf8' }).trim();
  }
});
