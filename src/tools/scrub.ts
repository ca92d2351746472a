/**
 * `hushpay scrub`: a copy of a recording with every DTMF tone removed, for recordings made
 * before (or around) live masking.
 *
 * Each channel runs through its own DtmfEngine with one output, 160 samples (one 20 ms RTP
 * frame) at a time, exactly as on a live call. The engine hands its output back `delaySamples`
 * late (it must hear a tone before its first sample leaves), so the first `delaySamples` output
 * samples — the delay line's initial silence — are dropped and the flush is appended: the copy
 * is sample-aligned with the input and just as long. Unmasked samples leave the engine
 * unchanged (G.711 bytes byte for byte, through processG711), so a scrubbed file differs from
 * its input only where a tone was.
 *
 * The count of removed tones is the number of masked spans the engines reported, summed over
 * channels; the removed duration is the total length of those spans.
 *
 * Files: the output is written under a temporary name beside OUT and renamed into place, so a
 * failed scrub never leaves half a file; the input is never written, and OUT naming the same
 * file as IN (or, for folders, either folder inside the other) is refused.
 */

import type { Dirent } from 'node:fs';
import { mkdir, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UsageError } from '../errors.ts';
import { DtmfEngine, type MaskMode } from '../media/dtmf/engine.ts';
import { SAMPLE_RATE_HZ } from '../media/dtmf/frequencies.ts';
import type { G711Law } from '../media/g711.ts';
import { encodeInt16ToWavData, type WavSampleFormat } from '../media/wav.ts';
import { describeFailure, type Failure } from './failure.ts';
import {
  FRAME_SAMPLES,
  g711Channel,
  g711LawOf,
  interleaveBytes,
  linearChannels,
  readRecording,
  type Recording,
  type RecordingKind,
  recordingKindOf,
  requireRecordingKind,
  serializeRecording,
} from './recording.ts';

export const DEFAULT_SCRUB_MODE: MaskMode = 'silence';

export interface ScrubOptions {
  /** What replaces a tone: `silence` (default), a `flat` beep, or comfort `noise`. */
  readonly mode?: MaskMode;
}

export interface ChannelScrub {
  /** Masked spans, each one removed tone (tones closer than the masker's margins merge). */
  readonly removedTones: number;
  readonly removedSamples: number;
}

export interface ScrubResult {
  readonly kind: RecordingKind;
  readonly format: WavSampleFormat;
  readonly channels: number;
  readonly frames: number;
  readonly mode: MaskMode;
  /** Summed over channels. */
  readonly removedTones: number;
  /** Total length of the removed spans, summed over channels, ms. */
  readonly removedMs: number;
  readonly perChannel: readonly ChannelScrub[];
}

interface ChannelOutput<T> {
  readonly samples: T;
  readonly scrub: ChannelScrub;
}

/** The part of the engine both sample kinds share: chunked in, delayed out, then flushed. */
interface ChannelPass {
  readonly length: number;
  readonly output: Int16Array | Uint8Array;
  /** Feeds input samples [from, to) and returns what the engine hands back. */
  process(from: number, to: number): Int16Array | Uint8Array;
  flush(): Int16Array | Uint8Array;
}

function runChannel(engine: DtmfEngine, pass: ChannelPass): void {
  const { length, output } = pass;
  // Stream position of the next sample the engine hands back: its first `delaySamples` are
  // the delay line's initial silence, before the recording began.
  let position = -engine.delaySamples;
  const take = (chunk: Int16Array | Uint8Array): void => {
    const skip = Math.max(0, -position);
    if (skip < chunk.length) output.set(chunk.subarray(skip), position + skip);
    position += chunk.length;
  };
  for (let offset = 0; offset < length; offset += FRAME_SAMPLES) {
    take(pass.process(offset, Math.min(length, offset + FRAME_SAMPLES)));
  }
  take(pass.flush());
  if (position !== length) throw new Error(`scrub: engine returned ${position} samples for ${length}`);
}

function newEngine(mode: MaskMode): { engine: DtmfEngine; scrub: () => ChannelScrub } {
  let removedTones = 0;
  let removedSamples = 0;
  const engine = new DtmfEngine({
    outputs: [mode],
    onMaskedSpan: (fromSample, toSample) => {
      removedTones++;
      removedSamples += toSample - fromSample;
    },
  });
  return { engine, scrub: () => ({ removedTones, removedSamples }) };
}

/** Scrubs one channel of 16-bit linear samples. */
export function scrubLinear(samples: Int16Array, mode: MaskMode = DEFAULT_SCRUB_MODE): ChannelOutput<Int16Array> {
  const { engine, scrub } = newEngine(mode);
  const output = new Int16Array(samples.length);
  runChannel(engine, {
    length: samples.length,
    output,
    process: (from, to) => engine.processLinear(samples.subarray(from, to))[0]!,
    flush: () => engine.flushLinear()[0]!,
  });
  return { samples: output, scrub: scrub() };
}

/** Scrubs one channel of G.711 bytes; every byte outside a masked span is copied unchanged. */
export function scrubG711(law: G711Law, bytes: Uint8Array, mode: MaskMode = DEFAULT_SCRUB_MODE): ChannelOutput<Uint8Array> {
  const { engine, scrub } = newEngine(mode);
  const output = new Uint8Array(bytes.length);
  runChannel(engine, {
    length: bytes.length,
    output,
    process: (from, to) => engine.processG711(law, bytes.subarray(from, to))[0]!,
    flush: () => engine.flushG711(law)[0]!,
  });
  return { samples: output, scrub: scrub() };
}

/** Scrubs a recording in memory: the bytes of the scrubbed file (same kind and format) and the tally. */
export function scrubRecording(recording: Recording, options: ScrubOptions = {}): { bytes: Uint8Array; result: ScrubResult } {
  const mode = options.mode ?? DEFAULT_SCRUB_MODE;
  const law = g711LawOf(recording.format);
  let data: Uint8Array;
  let perChannel: ChannelScrub[];
  if (law === undefined) {
    const channels = linearChannels(recording).map((samples) => scrubLinear(samples, mode));
    data = encodeInt16ToWavData('pcm16', channels.map((c) => c.samples));
    perChannel = channels.map((c) => c.scrub);
  } else {
    const channels = Array.from({ length: recording.channels }, (_, c) => scrubG711(law, g711Channel(recording, c), mode));
    data = interleaveBytes(channels.map((c) => c.samples));
    perChannel = channels.map((c) => c.scrub);
  }
  const removedSamples = perChannel.reduce((sum, c) => sum + c.removedSamples, 0);
  return {
    bytes: serializeRecording(recording, data),
    result: {
      kind: recording.kind,
      format: recording.format,
      channels: recording.channels,
      frames: recording.frames,
      mode,
      removedTones: perChannel.reduce((sum, c) => sum + c.removedTones, 0),
      removedMs: (removedSamples * 1000) / SAMPLE_RATE_HZ,
      perChannel,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

async function statOrUndefined(path: string): Promise<Awaited<ReturnType<typeof stat>> | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The real path of `path`, resolving symbolic links as far as the path exists. */
async function canonicalPath(path: string): Promise<string> {
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    return join(await canonicalPath(parent), basename(absolute));
  }
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Writes `bytes` to a temporary name beside `path`, then renames it into place. */
async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.hushpay-${process.pid}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx' });
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Scrubs the recording at `inPath` into `outPath` (created or replaced). OUT must name the same
 * kind of file as IN (.wav, .ul or .al) and must not be IN itself (UsageError).
 */
export async function scrubFile(inPath: string, outPath: string, options: ScrubOptions = {}): Promise<ScrubResult> {
  return scrubOne(inPath, outPath, options, false);
}

async function scrubOne(inPath: string, outPath: string, options: ScrubOptions, createParent: boolean): Promise<ScrubResult> {
  const kind = requireRecordingKind(inPath);
  const outKind = recordingKindOf(outPath);
  if (outKind !== kind) {
    throw new UsageError(`OUT must have the extension of IN (${extensionOf(kind)}): scrub keeps the format`);
  }
  const inStat = await stat(inPath);
  if (inStat.isDirectory()) throw new UsageError('IN is a directory, so OUT must be one too');
  const outStat = await statOrUndefined(outPath);
  if (outStat?.isDirectory() === true) throw new UsageError('OUT is a directory but IN is a file; give the output file name');
  if ((outStat !== undefined && outStat.dev === inStat.dev && outStat.ino === inStat.ino) || (await canonicalPath(inPath)) === (await canonicalPath(outPath))) {
    throw new UsageError('OUT is the same file as IN; scrub never overwrites its input');
  }
  const recording = await readRecording(inPath);
  const { bytes, result } = scrubRecording(recording, options);
  if (createParent) await mkdir(dirname(outPath), { recursive: true });
  await writeFileAtomic(outPath, bytes);
  return result;
}

function extensionOf(kind: RecordingKind): string {
  return kind === 'wav' ? '.wav' : kind === 'raw-pcmu' ? '.ul' : '.al';
}

/**
 * Every recording under `dir` (by extension, case-insensitive), as paths relative to `dir`,
 * sorted. Symbolic links are not followed (no loops, nothing outside the folder).
 */
export async function listRecordings(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries: Dirent[] = await readdir(join(dir, rel), { withFileTypes: true });
    for (const entry of entries) {
      const path = rel === '' ? entry.name : join(rel, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && recordingKindOf(entry.name) !== undefined) found.push(path);
    }
  };
  await walk('');
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export type ScrubFileOutcome =
  | { readonly path: string; readonly ok: true; readonly result: ScrubResult }
  | { readonly path: string; readonly ok: false; readonly failure: Failure };

export interface ScrubTreeProgress {
  /** Files finished (scrubbed or failed) and in all. */
  readonly done: number;
  readonly total: number;
  /** The file being scrubbed, or just finished (relative to IN). */
  readonly current: string;
  /** Set once `current` is finished. */
  readonly finished?: ScrubFileOutcome;
}

export interface ScrubTreeOptions extends ScrubOptions {
  /** Called before and after each file. */
  readonly onProgress?: (progress: ScrubTreeProgress) => void;
}

export interface ScrubTreeResult {
  readonly files: readonly ScrubFileOutcome[];
  readonly scrubbed: number;
  readonly failed: number;
  readonly removedTones: number;
  readonly removedMs: number;
}

/**
 * Scrubs every recording under `inDir` into the same relative path under `outDir` (created if
 * missing). A file that fails is recorded with its error code and skipped; errors about the
 * folders themselves are thrown. Refuses (UsageError) OUT equal to IN, or either inside the other.
 */
export async function scrubTree(inDir: string, outDir: string, options: ScrubTreeOptions = {}): Promise<ScrubTreeResult> {
  const inStat = await stat(inDir);
  if (!inStat.isDirectory()) throw new UsageError('IN is not a directory');
  const outStat = await statOrUndefined(outDir);
  if (outStat !== undefined && !outStat.isDirectory()) throw new UsageError('IN is a directory, so OUT must be one too');
  const inReal = await canonicalPath(inDir);
  const outReal = await canonicalPath(outDir);
  if (inReal === outReal) throw new UsageError('OUT is the same directory as IN; scrub never overwrites its input');
  if (isInside(outReal, inReal)) throw new UsageError('OUT is inside IN; give an output directory outside the input');
  if (isInside(inReal, outReal)) throw new UsageError('IN is inside OUT; give an output directory that does not contain the input');

  const paths = await listRecordings(inDir);
  await mkdir(outDir, { recursive: true });
  const files: ScrubFileOutcome[] = [];
  const report = options.onProgress ?? ((): void => undefined);
  for (const [i, path] of paths.entries()) {
    report({ done: i, total: paths.length, current: path });
    let outcome: ScrubFileOutcome;
    try {
      outcome = { path, ok: true, result: await scrubOne(join(inDir, path), join(outDir, path), options, true) };
    } catch (err) {
      outcome = { path, ok: false, failure: describeFailure(err) };
    }
    files.push(outcome);
    report({ done: i + 1, total: paths.length, current: path, finished: outcome });
  }
  const results = files.flatMap((f) => (f.ok ? [f.result] : []));
  return {
    files,
    scrubbed: results.length,
    failed: files.length - results.length,
    removedTones: results.reduce((sum, r) => sum + r.removedTones, 0),
    removedMs: results.reduce((sum, r) => sum + r.removedMs, 0),
  };
}
