/**
 * Test support: free ports, a hushpay started in-process on ephemeral ports, and child
 * processes (SIPp) run with a deadline.
 */

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { type Hushpay, startHushpay } from '../../src/server.ts';

/** A port free for both UDP and TCP on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

/** A range of RTP ports for one test file, apart from other files' (vitest runs files in parallel). */
let nextRange = 20000 + (process.pid % 200) * 100;
export function rtpRange(size = 80): { portMin: number; portMax: number } {
  const portMin = nextRange;
  nextRange += size;
  return { portMin, portMax: portMin + size - 1 };
}

export interface TestHushpay extends Hushpay {
  readonly sipPort: number;
  readonly dataDir: string;
  /** Every log line hushpay wrote, for the card-data checks. */
  readonly logLines: string[];
}

/** Starts hushpay in-process on an ephemeral SIP port, routing every call to `pbx`. */
export async function startTestHushpay(options: { pbx: string; raw?: Record<string, unknown>; env?: NodeJS.ProcessEnv; fetch?: typeof fetch }): Promise<TestHushpay> {
  const sipPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'hushpay-'));
  const extra = options.raw ?? {};
  const raw = {
    ...extra,
    sip: { host: '127.0.0.1', port: sipPort, timers: { T1: 100, T2: 800, T4: 1000 }, ...(extra['sip'] as object | undefined) },
    media: { host: '127.0.0.1', ...rtpRange(), noRtpTimeoutMs: 10_000, ...(extra['media'] as object | undefined) },
    http: { host: '127.0.0.1', port: 0, ...(extra['http'] as object | undefined) },
    dataDir,
  };
  const config = validateConfig(raw as never, { pbx: options.pbx });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const hushpay = await startHushpay(config, { logger: createLogger({ level: 'debug', destination: sink }), ...(options.env ? { env: options.env } : {}), ...(options.fetch ? { fetch: options.fetch } : {}) });
  return Object.assign(hushpay, { sipPort, dataDir, logLines });
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (with `stdin` as its input, if given), killing it after `timeoutMs`. */
export function run(command: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number; env?: Record<string, string>; stdin?: string } = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    child.stdin?.end(options.stdin);
    let stdout = '';
    let stderr = '';
    // decoded as a stream, so a character split across two chunks stays whole
    // both are pipes (stdio above); only stdin may be 'ignore'
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
