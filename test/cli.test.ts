// The `hushpay` CLI as contact centres run it: a real child process on real files in a temp
// dir. Test audio is made by sox (soxDtmf, and sox writes every container), scrubbed output is
// read back by sox and graded by multimon-ng and spandsp, so hushpay never grades itself.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressReporter, renderProgressBar } from '../src/tools/progress.ts';
import { decodeMultimon, decodeSpandsp } from './support/referees.ts';
import { freePort, type ProcessResult, run } from './support/hushpay.ts';
import { DBM0_RMS, msToSamples, soxDtmf } from './support/soxgen.ts';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hushpay-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;
function tempPath(name: string): string {
  return join(dir, `${fileCounter++}-${name}`);
}

// --- the CLI as a child process --------------------------------------------------------------

type CliRun = ProcessResult;

function runCli(args: readonly string[]): Promise<CliRun> {
  return run(process.execPath, [CLI, ...args]);
}

function jsonLines(text: string): unknown[] {
  return text.split('\n').filter((l) => l !== '').map((l): unknown => JSON.parse(l));
}

// --- test audio: sox makes it and reads it back ----------------------------------------------

const TONE_MS = 80;
const GAP_MS = 120;
const LEAD_MS = 100;
/** A noise floor under everything, so a scrubbed copy that slipped by a sample would differ. */
const NOISE_DBM0 = -50;

/** Keyed tone [start, end) of digit i, ms. */
function keyedSpan(i: number, leadMs = LEAD_MS): { startMs: number; endMs: number } {
  const startMs = leadMs + i * (TONE_MS + GAP_MS);
  return { startMs, endMs: startMs + TONE_MS };
}

function keyed(digits: string, leadMs = LEAD_MS): Int16Array {
  const signal = soxDtmf({ digits, onMs: TONE_MS, gapMs: GAP_MS, leadMs, levelDbm0: -10, noiseDbm0: NOISE_DBM0 });
  const tail = new Int16Array(signal.length + msToSamples(100)); // quiet after the last tone
  tail.set(signal);
  return tail;
}

const RAW_S16 = ['-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-r', '8000'];

function sox(args: readonly string[], input?: Uint8Array): Buffer {
  return execFileSync('sox', ['-D', '-V1', ...args], { input, maxBuffer: 1 << 28 });
}

function s16Bytes(samples: Int16Array): Buffer {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
}

interface Format {
  readonly name: string;
  readonly ext: 'wav' | 'ul' | 'al';
  /** sox output options for this format. */
  readonly sox: readonly string[];
  /** sox --i -e of a file of this format. */
  readonly encoding: string;
  readonly g711: boolean;
  /** Largest |sample| of a G.711 "silence" byte (A-law has no zero). */
  readonly silenceMax: number;
}

const FORMATS: readonly Format[] = [
  { name: 'PCM WAV', ext: 'wav', sox: ['-e', 'signed-integer', '-b', '16'], encoding: 'Signed Integer PCM', g711: false, silenceMax: 0 },
  { name: 'μ-law WAV', ext: 'wav', sox: ['-e', 'u-law'], encoding: 'u-law', g711: true, silenceMax: 0 },
  { name: 'A-law WAV', ext: 'wav', sox: ['-e', 'a-law'], encoding: 'A-law', g711: true, silenceMax: 8 },
  { name: 'raw .ul', ext: 'ul', sox: ['-t', 'ul'], encoding: 'u-law', g711: true, silenceMax: 0 },
  { name: 'raw .al', ext: 'al', sox: ['-t', 'al'], encoding: 'A-law', g711: true, silenceMax: 8 },
];

/** sox's input options for a file (a raw file says nothing about itself). */
function soxInput(path: string): string[] {
  if (path.endsWith('.ul')) return ['-t', 'ul', '-r', '8000', '-c', '1', path];
  if (path.endsWith('.al')) return ['-t', 'al', '-r', '8000', '-c', '1', path];
  return [path];
}

/** Writes `channels` (same length) as a file of `format` through sox. */
function writeRecording(format: Format, channels: readonly Int16Array[], name: string): string {
  const path = tempPath(`${name}.${format.ext}`);
  const frames = channels[0]!.length;
  const interleaved = new Int16Array(frames * channels.length);
  channels.forEach((c, ch) => c.forEach((v, i) => (interleaved[i * channels.length + ch] = v)));
  sox([...RAW_S16, '-c', String(channels.length), '-', ...format.sox, path], s16Bytes(interleaved));
  return path;
}

/** One channel of a file, decoded to 16-bit linear by sox. */
function readLinear(path: string, channel = 0): Int16Array {
  const remix = Number(soxInfo(path, '-c')) > 1 ? ['remix', String(channel + 1)] : [];
  const out = sox([...soxInput(path), ...RAW_S16, '-c', '1', '-', ...remix]);
  return new Int16Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}

/** What sox says of a file (a raw .ul/.al file is taken as 8 kHz mono, with a warning we drop). */
function soxInfo(path: string, flag: '-c' | '-r' | '-s' | '-e'): string {
  return execFileSync('sox', ['--i', flag, path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** The sample bytes of a file: a raw file itself, or a WAV file's data chunk (walked by hand). */
function sampleBytes(path: string): Uint8Array {
  const file = new Uint8Array(readFileSync(path));
  if (!path.endsWith('.wav')) return file;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  for (let offset = 12; offset + 8 <= file.length; ) {
    const id = String.fromCharCode(...file.subarray(offset, offset + 4));
    const size = view.getUint32(offset + 4, true);
    if (id === 'data') return file.subarray(offset + 8, offset + 8 + size);
    offset += 8 + size + (size & 1);
  }
  throw new Error(`no data chunk in ${path}`);
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

/** Sample ranges [from, to) around each keyed tone that a scrub may touch. */
function toneWindows(count: number, marginMs: number, leadMs = LEAD_MS): [number, number][] {
  return Array.from({ length: count }, (_, i) => {
    const { startMs, endMs } = keyedSpan(i, leadMs);
    return [msToSamples(startMs - marginMs), msToSamples(endMs + marginMs)];
  });
}

function inWindows(sample: number, windows: readonly [number, number][]): boolean {
  return windows.some(([from, to]) => sample >= from && sample < to);
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

// ---------------------------------------------------------------------------------------------

const DIGITS = '15#0';

describe('hushpay detect', () => {
  it.each(FORMATS)('prints each keyed digit of a $name recording at its keyed time', async (format) => {
    // Arrange
    const path = writeRecording(format, [keyed(DIGITS)], 'detect');

    // Act
    const run = await runCli(['detect', path]);

    // Assert
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = jsonLines(run.stdout);
    expect(lines.map((l) => (l as { digit: string }).digit)).toEqual([...DIGITS]);
    lines.forEach((line, i) => {
      const { startMs, endMs } = keyedSpan(i);
      expect(Object.keys(line as object)).toEqual(['digit', 'startMs', 'endMs']); // mono: no channel field
      const d = line as { startMs: number; endMs: number };
      expect(Number.isInteger(d.startMs) && Number.isInteger(d.endMs)).toBe(true);
      expect(Math.abs(d.startMs - startMs)).toBeLessThanOrEqual(15);
      expect(Math.abs(d.endMs - endMs)).toBeLessThanOrEqual(15);
    });
  });

  it('prints the digits of each channel of a stereo recording with its channel, in time order', async () => {
    // Arrange: the right channel keys other digits, 100 ms later
    const left = keyed('1590');
    const right = keyed('#82A', LEAD_MS + 100);
    const frames = Math.max(left.length, right.length);
    const pad = (s: Int16Array): Int16Array => {
      const out = new Int16Array(frames);
      out.set(s);
      return out;
    };
    const path = writeRecording(FORMATS[1]!, [pad(left), pad(right)], 'stereo');

    // Act
    const run = await runCli(['detect', path]);

    // Assert
    expect(run.code).toBe(0);
    const lines = jsonLines(run.stdout) as { digit: string; startMs: number; endMs: number; channel: number }[];
    for (const [channel, digits, leadMs] of [[0, '1590', LEAD_MS], [1, '#82A', LEAD_MS + 100]] as const) {
      const mine = lines.filter((l) => l.channel === channel);
      expect(mine.map((l) => l.digit)).toEqual([...digits]);
      mine.forEach((l, i) => {
        expect(Math.abs(l.startMs - keyedSpan(i, leadMs).startMs)).toBeLessThanOrEqual(15);
        expect(Math.abs(l.endMs - keyedSpan(i, leadMs).endMs)).toBeLessThanOrEqual(15);
      });
    }
    expect(lines).toHaveLength(8);
    const starts = lines.map((l) => l.startMs);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
  });

  it('refuses a recording that is not at 8000 Hz, saying it does not resample', async () => {
    const path = tempPath('wideband.wav');
    sox([...RAW_S16, '-c', '1', '-', '-r', '16000', path], s16Bytes(keyed('1')));

    const run = await runCli(['detect', path]);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('HP_ERR_UNSUPPORTED_SAMPLE_RATE');
    expect(run.stderr).toMatch(/16000 Hz.*resample/);
  });
});

describe('hushpay scrub', () => {
  it.each(FORMATS)('removes every tone from a $name recording and leaves everything else as it was', async (format) => {
    // Arrange
    const input = writeRecording(format, [keyed(DIGITS)], 'in');
    const output = tempPath(`out.${format.ext}`);
    const inputLinear = readLinear(input);

    // Act
    const run = await runCli(['scrub', input, output]);

    // Assert: the tally
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`removed ${DIGITS.length} tones, \\d+ ms in total`));
    const removedMs = Number(/, (\d+) ms in total/.exec(run.stdout)?.[1]);
    expect(removedMs).toBeGreaterThanOrEqual(DIGITS.length * (TONE_MS - 5));
    expect(removedMs).toBeLessThanOrEqual(DIGITS.length * (TONE_MS + 40));

    // the same format and length, as sox reads it
    for (const flag of ['-c', '-r', '-s', '-e'] as const) expect(soxInfo(output, flag)).toBe(soxInfo(input, flag));
    expect(soxInfo(output, '-e')).toBe(format.encoding);
    if (format.ext !== 'wav') expect(readFileSync(output).length).toBe(readFileSync(input).length);

    // the referees hear every digit in the input and none in the output
    const outputLinear = readLinear(output);
    const [multimonIn, spandspIn, multimonOut, spandspOut] = await Promise.all([
      decodeMultimon(inputLinear),
      decodeSpandsp(inputLinear),
      decodeMultimon(outputLinear),
      decodeSpandsp(outputLinear),
    ]);
    expect(multimonIn.join('')).toBe(DIGITS);
    expect(spandspIn.map((d) => d.digit).join('')).toBe(DIGITS);
    expect(multimonOut).toEqual([]);
    expect(spandspOut).toEqual([]);

    // sample-aligned and unchanged outside the tones (G.711 byte for byte), silent inside them
    const windows = toneWindows(DIGITS.length, 20);
    const inBytes = sampleBytes(input);
    const outBytes = sampleBytes(output);
    expect(outBytes.length).toBe(inBytes.length);
    const bytesPerSample = format.g711 ? 1 : 2;
    let changedOutside = 0;
    let changedInside = 0;
    for (let i = 0; i < inBytes.length; i++) {
      if (inBytes[i] === outBytes[i]) continue;
      if (inWindows(Math.floor(i / bytesPerSample), windows)) changedInside++;
      else changedOutside++;
    }
    expect(changedOutside).toBe(0);
    expect(changedInside).toBeGreaterThan(0);
    for (const [from, to] of toneWindows(DIGITS.length, -10)) {
      const core = outputLinear.subarray(from, to);
      expect(Math.max(...core.map(Math.abs))).toBeLessThanOrEqual(format.silenceMax);
    }
  });

  it('with --mode flat, leaves no digit but a beep where each tone was', async () => {
    const format = FORMATS[1]!;
    const input = writeRecording(format, [keyed(DIGITS)], 'flat-in');
    const output = tempPath('flat-out.wav');

    const run = await runCli(['scrub', '--mode', 'flat', input, output]);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`removed ${DIGITS.length} tones`));
    const outputLinear = readLinear(output);
    expect(await decodeMultimon(outputLinear)).toEqual([]);
    expect(await decodeSpandsp(outputLinear)).toEqual([]);
    const noiseRms = DBM0_RMS * 10 ** (NOISE_DBM0 / 20);
    for (const [from, to] of toneWindows(DIGITS.length, -10)) {
      expect(rms(outputLinear.subarray(from, to))).toBeGreaterThan(20 * noiseRms);
    }
  });

  it.each([FORMATS[0]!, FORMATS[2]!])('removes the tones of both channels of a stereo $name recording and counts them all', async (format) => {
    const input = writeRecording(format, [keyed('12'), keyed('345')], 'stereo-in');
    const output = tempPath('stereo-out.wav');

    const run = await runCli(['scrub', input, output]);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('removed 5 tones (channel 0: 2, channel 1: 3)');
    for (const flag of ['-c', '-s', '-e'] as const) expect(soxInfo(output, flag)).toBe(soxInfo(input, flag));
    for (const [channel, count] of [[0, 2], [1, 3]] as const) {
      const before = readLinear(input, channel);
      const after = readLinear(output, channel);
      expect(await decodeSpandsp(before)).toHaveLength(count);
      expect(await decodeSpandsp(after)).toEqual([]);
      const windows = toneWindows(count, 20);
      const changedOutside = after.filter((v, i) => v !== before[i] && !inWindows(i, windows)).length;
      expect(changedOutside).toBe(0);
    }
  });

  it('scrubs a folder into the same relative paths, reports the corrupt file with its code and exits 1', async () => {
    // Arrange: three recordings in nested folders, a corrupt .wav, and a file that is no recording
    const root = tempPath('tree');
    const inDir = join(root, 'in');
    const outDir = join(root, 'out');
    mkdirSync(join(inDir, 'x', 'y'), { recursive: true });
    const sources: [string, Format, string][] = [
      ['one.wav', FORMATS[0]!, '12'],
      [join('x', 'two.ul'), FORMATS[3]!, '345'],
      [join('x', 'y', 'three.al'), FORMATS[4]!, '6'],
    ];
    for (const [rel, format, digits] of sources) {
      const made = writeRecording(format, [keyed(digits)], 'tree-src');
      writeFileSync(join(inDir, rel), readFileSync(made));
    }
    writeFileSync(join(inDir, 'x', 'bad.wav'), 'RIFX, not a wave file at all');
    writeFileSync(join(inDir, 'notes.txt'), 'not a recording');
    const before = sources.map(([rel]) => fileHash(join(inDir, rel)));

    // Act
    const run = await runCli(['scrub', inDir, outDir]);

    // Assert
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/failed: x[/\\]bad\.wav: HP_ERR_WAV_FORMAT: WAV: not a RIFF\/WAVE file/);
    expect(run.stderr).toContain('4/4 files (100%)'); // plain progress lines: stderr is a pipe
    expect(run.stderr).not.toContain('\r');
    expect(run.stdout).toContain('scrubbed 3 of 4 files');
    expect(run.stdout).toContain('removed 6 tones');
    expect(run.stdout).toContain('1 failed');
    expect(existsSync(join(outDir, 'x', 'bad.wav'))).toBe(false);
    expect(existsSync(join(outDir, 'notes.txt'))).toBe(false);
    expect(readdirSync(outDir, { recursive: true }).map(String).sort()).toEqual(
      ['one.wav', 'x', join('x', 'two.ul'), join('x', 'y'), join('x', 'y', 'three.al')].sort(),
    );
    for (const [rel] of sources) {
      expect(readFileSync(join(outDir, rel)).length).toBe(readFileSync(join(inDir, rel)).length);
      expect(await decodeSpandsp(readLinear(join(outDir, rel)))).toEqual([]);
    }
    expect(sources.map(([rel]) => fileHash(join(inDir, rel)))).toEqual(before);
  });

  it('draws one updating progress line on a terminal', async () => {
    const hasScript = spawnSync('script', ['--version']).status === 0;
    expect(hasScript, 'util-linux script(1) is needed to give the CLI a terminal').toBe(true);
    const inDir = tempPath('tty-in');
    mkdirSync(join(inDir, 'sub'), { recursive: true });
    for (const name of ['a.ul', join('sub', 'b.ul')]) {
      writeFileSync(join(inDir, name), readFileSync(writeRecording(FORMATS[3]!, [keyed('7')], 'tty-src')));
    }
    const command = [process.execPath, CLI, 'scrub', inDir, tempPath('tty-out')].map((a) => `'${a}'`).join(' ');

    const transcript = execFileSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });

    expect(transcript).toContain('\r');
    expect(transcript).toContain('\x1b[K');
    expect(transcript).toMatch(/scrub \[#+\] 2\/2 100% {2}sub[/\\]b\.ul/);
    expect(transcript).toContain('scrubbed 2 of 2 files');
  });

  it('refuses OUT equal to IN, for a file and for a folder, and leaves IN alone', async () => {
    const file = writeRecording(FORMATS[3]!, [keyed('9')], 'self');
    const hash = fileHash(file);
    const inDir = tempPath('self-dir');
    mkdirSync(inDir);

    const runs = await Promise.all([
      runCli(['scrub', file, file]),
      runCli(['scrub', inDir, inDir]),
      runCli(['scrub', inDir, join(inDir, 'inside')]),
    ]);

    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('HP_ERR_USAGE');
    }
    expect(runs[0]!.stderr).toContain('same file as IN');
    expect(fileHash(file)).toBe(hash);
    expect(existsSync(join(inDir, 'inside'))).toBe(false);
  });
});

describe('usage errors exit 2 with a message', () => {
  it.each([
    { args: ['frobnicate'], message: "unknown command 'frobnicate'" },
    { args: ['detect'], message: 'missing FILE' },
    { args: ['scrub', 'in.wav'], message: 'missing OUT' },
    { args: ['scrub', 'in.wav', 'out.wav', '--mode', 'loud'], message: "--mode must be one of flat, silence, noise, got 'loud'" },
    { args: ['scrub', 'in.wav', 'out.wav', '--frob'], message: "Unknown option '--frob'" },
    { args: ['scrub', 'in.ul', 'out.wav'], message: 'OUT must have the extension of IN (.ul)' },
    { args: [], message: 'Usage: hushpay <command>' },
  ])('hushpay $args', async ({ args, message }) => {
    const run = await runCli(args);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(message);
    if (args.length > 0) expect(run.stderr).toContain('HP_ERR_USAGE');
  });

  it('prints each command\'s usage for --help and exits 0', async () => {
    const [detect, scrub, top] = await Promise.all([runCli(['detect', '--help']), runCli(['scrub', '-h']), runCli(['--help'])]);

    expect(detect.code).toBe(0);
    expect(detect.stdout).toContain('Usage: hushpay detect FILE');
    expect(scrub.code).toBe(0);
    expect(scrub.stdout).toContain('Usage: hushpay scrub IN OUT [--mode silence|flat|noise]');
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/detect +print every DTMF digit/);
  });
});

describe('ProgressReporter', () => {
  it('writes plain lines off a terminal: at each new tenth, or after the interval, and the last state', () => {
    const written: string[] = [];
    let now = 0;
    const reporter = new ProgressReporter({ label: 'scrub', write: (t) => written.push(t), isTTY: false, now: () => now, intervalMs: 1000 });

    for (let done = 0; done <= 40; done++) reporter.update({ done, total: 200, current: `f${done}` }); // 0–20 %
    now = 1000;
    reporter.update({ done: 41, total: 200, current: 'f41' });
    reporter.update({ done: 42, total: 200, current: 'f42' });
    reporter.finish();

    expect(written).toEqual([
      'scrub: 0/200 files (0%) f0\n',
      'scrub: 20/200 files (10%) f20\n',
      'scrub: 40/200 files (20%) f40\n',
      'scrub: 41/200 files (20%) f41\n',
      'scrub: 42/200 files (21%) f42\n',
    ]);
  });

  it('cuts the bar line to the terminal width, keeping the end of the file name', () => {
    const line = renderProgressBar('scrub', { done: 3, total: 12, current: 'calls/2024/05/very-long-recording-name.wav' }, 60);

    expect([...line].length).toBeLessThanOrEqual(59);
    expect(line).toMatch(/^scrub \[#{6}·{18}\] {2}3\/12 {2}25% {2}….*name\.wav$/);
  });
});

describe('hushpay sandbox-gateway', () => {
  it('serves the sandbox over HTTP until SIGTERM: a test card approved, a decline card declined', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'sandbox-gateway', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 100 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain(`sandbox gateway listening on http://127.0.0.1:${port}`);
    const sale = async (number: string, key: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/sale`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ orderId: 'o-1', amount: 500, currency: 'JPY', card: { number, expMonth: 12, expYear: 2030, securityCode: '123', brand: 'visa' } }) });
      return (await res.json()) as { status: string; reason?: string; last4: string };
    };
    expect(await sale('4242424242424242', 'a')).toMatchObject({ status: 'approved', last4: '4242' });
    expect(await sale('4000000000009995', 'b')).toMatchObject({ status: 'declined', reason: 'insufficient-funds' });
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
