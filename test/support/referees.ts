// Independent DTMF referees for tests and the benchmark: spandsp's dtmf_rx (through our own
// small C program, test/support/spandsp_referee.c) and multimon-ng (behind a sox resampler).
// Nothing here uses hushpay's code, so no test grades hushpay with hushpay.
//
// Every call runs in its own child processes, so any number of decodes may run concurrently.
// Samples are streamed through pipes with back-pressure; inputs of several hours are fine.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

export const SAMPLE_RATE = 8000;

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE = fileURLToPath(new URL('./spandsp_referee.c', import.meta.url));
/** Build cache; node_modules is git-ignored. */
export const REFEREE_CACHE_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'hushpay-referees');
const BINARY = join(REFEREE_CACHE_DIR, 'spandsp_referee');

/** A digit as spandsp confirmed it. Times are stream positions in ms from the first sample at
 *  which spandsp reported the change (tone edge + its 25.5–38.25 ms detection latency). */
export interface SpandspDigit {
  digit: string;
  onMs: number;
  offMs: number;
  /** spandsp's tone-on level, dBm0, total of both tones (two −10 dBm0 tones read −6/−7). */
  level: number;
}

export interface SpandspOptions {
  /** normal twist (low group louder) accepted, dB; integer (spandsp 0.0.6 takes int). Default 8. */
  twistDb?: number;
  /** reverse twist (high group louder) accepted, dB; integer. Default 4. */
  reverseTwistDb?: number;
  /** per-tone detection threshold, dBm0; integer. Default −42. */
  thresholdDbm0?: number;
  /** spandsp's 350/440 Hz dial-tone notch. Default off. */
  filterDialtone?: boolean;
}

/** The prototype's third, more sensitive referee (masking-notes.md §2). */
export const SPANDSP_WIDE = { thresholdDbm0: -50, twistDb: 12, reverseTwistDb: 12 } as const satisfies SpandspOptions;

export interface SpandspCost {
  /** CPU seconds spent inside dtmf_rx (excludes reading the pipe). */
  cpuSeconds: number;
  /** CPU seconds of the whole referee process (user + system), start-up included. */
  processCpuSeconds: number;
  samples: number;
  audioSeconds: number;
  /** audioSeconds / cpuSeconds */
  xRealtime: number;
}

let builtFor: number | undefined;

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Builds test/support/spandsp_referee.c (once per source change) into
 * node_modules/.cache/hushpay-referees/ and returns the binary's path.
 * Throws a clear error when gcc or libspandsp-dev is missing.
 */
export function spandspReferee(): string {
  const srcTime = mtimeMs(SOURCE);
  if (srcTime === undefined) throw new Error(`spandsp referee source missing: ${SOURCE}`);
  if (builtFor === srcTime) return BINARY;
  const binTime = mtimeMs(BINARY);
  if (binTime !== undefined && binTime >= srcTime) {
    builtFor = srcTime;
    return BINARY;
  }
  mkdirSync(REFEREE_CACHE_DIR, { recursive: true });
  // Build under a private name, then rename: concurrent test workers never see half a binary.
  const tmp = `${BINARY}.${process.pid}.${Date.now()}.tmp`;
  const res = spawnSync('gcc', ['-O2', '-Wall', '-o', tmp, SOURCE, '-lspandsp', '-lm'], { encoding: 'utf8' });
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? 'spandsp referee: gcc not found (apt-get install gcc libc6-dev libspandsp-dev)'
        : `spandsp referee: cannot run gcc: ${res.error.message}`,
    );
  }
  if (res.status !== 0) {
    rmSync(tmp, { force: true });
    const err = res.stderr;
    if (/spandsp\.h|tiffio\.h/.test(err) && /No such file/.test(err)) {
      throw new Error(`spandsp referee: spandsp headers not found (apt-get install libspandsp-dev)\n${err}`);
    }
    if (/cannot find -lspandsp/.test(err)) {
      throw new Error(`spandsp referee: libspandsp not found (apt-get install libspandsp-dev)\n${err}`);
    }
    throw new Error(`spandsp referee: gcc failed (status ${String(res.status)})\n${err}`);
  }
  renameSync(tmp, BINARY);
  builtFor = srcTime;
  return BINARY;
}

/** Little-endian bytes of the samples (a view, no copy, on little-endian hosts). */
export function s16leBytes(samples: Int16Array): Buffer {
  const view = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  if (endianness() === 'LE') return view;
  const copy = Buffer.from(view);
  copy.swap16();
  return copy;
}

function* slices(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, Math.min(bytes.length, i + size));
}

interface Collected {
  stdout: string;
  stderr: string;
}

function exitOf(child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`${name}: ${e.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${name} exited with ${code === null ? `signal ${String(signal)}` : `status ${code}`}`));
    });
  });
}

function collect(stream: NodeJS.ReadableStream | null, limit = 64 * 1024 * 1024): { text: () => string } {
  const parts: Buffer[] = [];
  let size = 0;
  stream?.on('data', (b: Buffer) => {
    if (size < limit) {
      parts.push(b);
      size += b.length;
    }
  });
  return { text: () => Buffer.concat(parts).toString('utf8') };
}

/**
 * Runs a chain of processes (each one's stdout piped into the next one's stdin), writes `input`
 * into the first with back-pressure and returns the last one's stdout. Every stderr is drained
 * and every link honours back-pressure, so nothing can deadlock however long the input is.
 * A failing stage rejects with its exit status and stderr.
 *
 * The links go through this process (stream.pipeline) rather than handing one child's stdout
 * socket to the next child as its stdin: the parent's copy of such a socket may start reading
 * and steal data from the pipe.
 */
async function runChain(stages: { cmd: string; args: string[] }[], input: Buffer): Promise<Collected> {
  const children = stages.map((st) => spawn(st.cmd, st.args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  const first = children[0];
  const last = children[children.length - 1];
  if (!first || !last) throw new Error('runChain: no stages');
  const exits = children.map((c, i) => exitOf(c, stages[i]?.cmd ?? '?'));
  const errs = children.map((c) => collect(c.stderr, 1024 * 1024));
  const out = collect(last.stdout);
  // A stage that dies early makes the writes into it fail (EPIPE); its exit status is the
  // real story, so link errors are only reported when every process exited cleanly.
  const links: Promise<unknown>[] = [
    pipeline(Readable.from(slices(input, 1 << 20)), first.stdin).then(() => undefined, (e: unknown) => e),
  ];
  for (let i = 1; i < children.length; i++) {
    const from = children[i - 1]?.stdout;
    const to = children[i]?.stdin;
    if (from && to) links.push(pipeline(from, to).then(() => undefined, (e: unknown) => e));
  }
  const settled = await Promise.allSettled(exits);
  const linkErrs = (await Promise.all(links)).filter((e) => e !== undefined);
  const stderrs = errs.map((e) => e.text());
  const failures = settled.flatMap((s, i) => {
    if (s.status === 'fulfilled') return [];
    const msg = s.reason instanceof Error ? s.reason.message : String(s.reason);
    return [`${msg}${stderrs[i] ? `: ${stderrs[i].trim()}` : ''}`];
  });
  if (failures.length > 0) throw new Error(failures.join('\n'));
  const linkErr = linkErrs[0];
  if (linkErr !== undefined) throw linkErr instanceof Error ? linkErr : new Error(String(linkErr));
  return { stdout: out.text(), stderr: stderrs.join('') };
}

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}] (spandsp 0.0.6 takes whole dB), got ${v}`);
  }
}

function spandspArgs(opts: SpandspOptions): string[] {
  checkInt('twistDb', opts.twistDb, 0, 60);
  checkInt('reverseTwistDb', opts.reverseTwistDb, 0, 60);
  checkInt('thresholdDbm0', opts.thresholdDbm0, -98, 10);
  const args: string[] = [];
  if (opts.twistDb !== undefined) args.push('-t', String(opts.twistDb));
  if (opts.reverseTwistDb !== undefined) args.push('-r', String(opts.reverseTwistDb));
  if (opts.thresholdDbm0 !== undefined) args.push('-T', String(opts.thresholdDbm0));
  if (opts.filterDialtone === true) args.push('-D');
  return args;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function parseDigitLine(line: string): SpandspDigit {
  const v: unknown = JSON.parse(line);
  if (
    isRecord(v) &&
    typeof v['digit'] === 'string' &&
    typeof v['onMs'] === 'number' &&
    typeof v['offMs'] === 'number' &&
    typeof v['level'] === 'number'
  ) {
    return { digit: v['digit'], onMs: v['onMs'], offMs: v['offMs'], level: v['level'] };
  }
  throw new Error(`spandsp referee: unexpected output line ${line}`);
}

/** Decodes 8 kHz samples with spandsp's dtmf_rx; defaults are spandsp's (−42 dBm0, twist 8/4 dB). */
export async function decodeSpandsp(samples: Int16Array, opts: SpandspOptions = {}): Promise<SpandspDigit[]> {
  const bin = spandspReferee();
  const { stdout } = await runChain([{ cmd: bin, args: spandspArgs(opts) }], s16leBytes(samples));
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(parseDigitLine);
}

/** CPU cost of spandsp's dtmf_rx on these samples (for the benchmark's cost comparison). */
export async function spandspCost(samples: Int16Array, opts: SpandspOptions = {}): Promise<SpandspCost> {
  const bin = spandspReferee();
  const { stderr } = await runChain([{ cmd: bin, args: [...spandspArgs(opts), '-s'] }], s16leBytes(samples));
  const line = stderr
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"cpuSeconds"'));
  if (line === undefined) throw new Error(`spandsp referee: no -s summary on stderr: ${stderr}`);
  const v: unknown = JSON.parse(line);
  if (
    !isRecord(v) ||
    typeof v['cpuSeconds'] !== 'number' ||
    typeof v['processCpuSeconds'] !== 'number' ||
    typeof v['samples'] !== 'number'
  ) {
    throw new Error(`spandsp referee: bad summary ${line}`);
  }
  const audioSeconds = v['samples'] / SAMPLE_RATE;
  return {
    cpuSeconds: v['cpuSeconds'],
    processCpuSeconds: v['processCpuSeconds'],
    samples: v['samples'],
    audioSeconds,
    xRealtime: v['cpuSeconds'] > 0 ? audioSeconds / v['cpuSeconds'] : Infinity,
  };
}

const SOX_TO_22050 = [
  '-D', '-R', '-V1',
  '-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-r', String(SAMPLE_RATE), '-c', '1', '-',
  '-t', 'raw', '-e', 'signed-integer', '-b', '16', '-c', '1', '-r', '22050', '-',
];
// sox writes native-endian raw when no -L/-B is given, which is what multimon-ng reads.
const MULTIMON = ['-q', '-c', '-a', 'DTMF', '-t', 'raw', '-'];

/**
 * Decodes 8 kHz samples with multimon-ng (sox resamples to 22,050 Hz first, as
 * shared/tools/decode_multimon.sh does). Returns the digits of the `DTMF: X` lines in order.
 * multimon-ng prints each change to a valid digit, so a flickering tone can repeat a digit.
 */
export async function decodeMultimon(samples: Int16Array): Promise<string[]> {
  const { stdout } = await runChain(
    [
      { cmd: 'sox', args: SOX_TO_22050 },
      { cmd: 'multimon-ng', args: MULTIMON },
    ],
    s16leBytes(samples),
  ).catch((e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    if (/ENOENT/.test(msg)) throw new Error(`decodeMultimon needs sox and multimon-ng (apt-get install sox multimon-ng): ${msg}`);
    throw e;
  });
  const digits: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^DTMF: ([0-9A-D*#])\s*$/.exec(line);
    if (m?.[1] !== undefined) digits.push(m[1]);
  }
  return digits;
}
