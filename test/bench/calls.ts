/**
 * The SIP issue's figures: concurrent calls one core relays (masking and recording on, no
 * packet lost, p99 added jitter ≤ 5 ms), call setup rate, and memory per active call.
 *
 * hushpay runs as `hushpay start` in its own process pinned to core 0; the load comes from a
 * second process (load.ts) pinned to core 1, over loopback. SIPp measures the setup rate.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, run } from '../support/hushpay.ts';
import type { LoadOptions, LoadResult } from './load.ts';

const HUSHPAY = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const LOAD = fileURLToPath(new URL('./load.ts', import.meta.url));

export interface RunningHushpay {
  readonly process: ChildProcess;
  readonly sipPort: number;
  readonly agentPort: number;
  stop(): Promise<void>;
}

function pinned(core: number, args: readonly string[]): [string, string[]] {
  return ['taskset', ['-c', String(core), process.execPath, ...args]];
}

/** Starts hushpay on core 0 with masking and recording on, calls routed to `agentPort`. */
export async function startPinnedHushpay(options: { maxCalls?: number; recording?: boolean } = {}): Promise<RunningHushpay> {
  const sipPort = await freePort();
  const agentPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'hushpay-bench-'));
  const config = {
    sip: { host: '127.0.0.1', port: sipPort, tcp: false },
    media: { host: '127.0.0.1', portMin: 30000, portMax: 39999, noRtpTimeoutMs: 600_000 },
    calls: { max: options.maxCalls ?? 5000 },
    dataDir: dir,
    tenants: [{ id: 'bench', pbx: `sip:agents@127.0.0.1:${agentPort}`, numbers: ['*'], recording: options.recording ?? true, masking: { agent: 'flat', recording: 'silence' } }],
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const [cmd, args] = pinned(0, [HUSHPAY, 'start', '--config', join(dir, 'config.json')]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, HUSHPAY_LOG_LEVEL: 'warn', NODE_OPTIONS: process.env['HUSHPAY_BENCH_NODE_OPTIONS'] ?? '' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 200 && !out.includes('Ctrl-C stops'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!out.includes('Ctrl-C stops')) throw new Error('hushpay did not start');
  return {
    process: child,
    sipPort,
    agentPort,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('close', () => {
          rmSync(dir, { recursive: true, force: true }); // the config and every call's recording
          resolve();
        });
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
      }),
  };
}

/** Resident memory of a process, KiB, from /proc. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** CPU time of a process, seconds, from /proc (user + system). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

export interface LoadRun extends LoadResult {
  readonly calls: number;
  /** hushpay's CPU over the measure window, % of its one core. */
  readonly hushpayCpuPct: number;
  readonly rssKiBIdle: number;
  /** hushpay's resident memory in the measure window (median of samples every 250 ms). */
  readonly rssKiBLoaded: number;
}

let rtploadBinary: string | undefined;

/** Builds rtpload.c once per run (gcc, as the spandsp referee is built). */
export function buildRtpload(): string {
  if (rtploadBinary) return rtploadBinary;
  const out = join(mkdtempSync(join(tmpdir(), 'rtpload-')), 'rtpload');
  const res = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', out, fileURLToPath(new URL('./rtpload.c', import.meta.url))], { encoding: 'utf8' });
  if (res.error || res.status !== 0) throw new Error(`rtpload: gcc failed (apt-get install gcc libc6-dev): ${res.error?.message ?? res.stderr}`);
  rtploadBinary = out;
  return out;
}

/** One load run of `calls` concurrent calls against a fresh hushpay. */
export async function loadRun(calls: number, options: { measureMs?: number; recording?: boolean } = {}): Promise<LoadRun> {
  const rtpload = buildRtpload();
  const hushpay = await startPinnedHushpay(options.recording === undefined ? {} : { recording: options.recording });
  const pid = hushpay.process.pid!;
  try {
    await new Promise((r) => setTimeout(r, 500));
    const rssKiBIdle = rssKiB(pid);
    const load: LoadOptions = { hushpay: `127.0.0.1:${hushpay.sipPort}`, agentPort: hushpay.agentPort, calls, setupRateCps: 100, warmupMs: 3000, measureMs: options.measureMs ?? 10_000, rtpload };
    const [cmd, args] = pinned(1, [LOAD, JSON.stringify(load)]);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const rss: number[] = [];
    const cpu = { start: 0, end: 0 };
    const timers: NodeJS.Timeout[] = [];
    let last = '';
    for await (const line of createInterface({ input: child.stdout! })) {
      last = line;
      if (line !== '{"event":"go"}') continue;
      // the window opens 50 ms after go plus the warm-up (rtpload.c)
      const opens = 50 + load.warmupMs;
      timers.push(setTimeout(() => (cpu.start = cpuSeconds(pid)), opens));
      timers.push(setTimeout(() => (cpu.end = cpuSeconds(pid)), opens + load.measureMs));
      for (let t = opens; t < opens + load.measureMs; t += 250) timers.push(setTimeout(() => rss.push(rssKiB(pid)), t));
    }
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
    for (const t of timers) clearTimeout(t);
    if (code !== 0) throw new Error(`load generator failed: ${stderr.slice(-2000)}`);
    const parsed = JSON.parse(last) as LoadResult;
    const hushpayCpuPct = cpu.end > 0 ? (100 * (cpu.end - cpu.start)) / (load.measureMs / 1000) : Number.NaN;
    rss.sort((a, b) => a - b);
    return { ...parsed, calls, hushpayCpuPct, rssKiBIdle, rssKiBLoaded: rss[Math.floor(rss.length / 2)] ?? Number.NaN };
  } finally {
    await hushpay.stop();
  }
}

/** Setup rate with SIPp: uac → hushpay → uas, 1 s calls, no media; the highest rate all succeed at. */
export async function setupRate(rates: readonly number[]): Promise<{ rate: number; calls: number; failed: number; p50ResponseMs: number | undefined; p99ResponseMs: number | undefined }[]> {
  const out = [];
  for (const rate of rates) {
    const hushpay = await startPinnedHushpay({ recording: true });
    try {
      const total = rate * 5;
      const uas = run('taskset', ['-c', '1', 'sipp', '-sn', 'uas', '-p', String(hushpay.agentPort), '-i', '127.0.0.1', '-m', String(total), '-nostdin', '-timeout', '60s'], { timeoutMs: 90_000 });
      await new Promise((r) => setTimeout(r, 300));
      const dir = mkdtempSync(join(tmpdir(), 'sipp-rate-'));
      const uac = await run('taskset', ['-c', '1', 'sipp', `127.0.0.1:${hushpay.sipPort}`, '-sn', 'uac', '-s', '100', '-r', String(rate), '-m', String(total), '-d', '1000', '-i', '127.0.0.1', '-p', String(await freePort()), '-nostdin', '-timeout', '60s', '-trace_rtt', '-rtt_freq', '1'], { timeoutMs: 90_000, cwd: dir });
      await uas;
      const failed = Number(/Failed call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(uac.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''))?.[1] ?? Number.NaN);
      const ok = Number(/Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(uac.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''))?.[1] ?? Number.NaN);
      // -trace_rtt: one line per call, the INVITE → 200 OK time in whole ms
      const rtt = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
      const times = rtt ? readFileSync(join(dir, rtt), 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(';')[1])).sort((a, b) => a - b) : [];
      rmSync(dir, { recursive: true, force: true });
      out.push({ rate, calls: ok, failed: Number.isNaN(failed) ? total - ok : failed, p50ResponseMs: times[Math.floor(times.length / 2)], p99ResponseMs: times[Math.floor(0.99 * times.length)] });
    } finally {
      await hushpay.stop();
    }
  }
  return out;
}

