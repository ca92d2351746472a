/**
 * The load generator for the call-capacity figures: a second process (pinned to the other core)
 * that plays N trunk callers and N PBX agents against a hushpay process on loopback.
 *
 * SIP comes from this Node process (the embedded SIP core as a plain user agent on each side);
 * RTP from `rtpload` (rtpload.c, built by calls.ts), which sends 20 ms PCMU packets both ways
 * for every call, spread evenly over the 20 ms period, and measures every packet's one-way time
 * through hushpay by a marker in its payload and the kernel's receive timestamp — so loss and
 * added jitter are counted per packet, and the generator's own delays are not hushpay's.
 *
 * Run as a child: node test/bench/load.ts '<json LoadOptions>'. It prints `{"event":"go"}` when
 * the media starts (the warm-up begins 50 ms later), then one JSON line of LoadResult.
 */

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { systemClock } from '../../src/clock.ts';
import { encode } from '../../src/media/g711.ts';
import type { SipMessage } from '../../src/sip/message.ts';
import { UdpTcpTransport } from '../../src/sip/transport-udp-tcp.ts';
import type { SipAddress } from '../../src/sip/transport.ts';
import { type SipDialog, SipUserAgent } from '../../src/sip/ua.ts';
import { concatPcm, naturalSpeechFiles, readPcm16Wav } from '../support/corpus.ts';

export interface LoadOptions {
  readonly hushpay: string; // host:port
  readonly agentPort: number;
  readonly calls: number;
  readonly setupRateCps: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** The built rtpload binary. */
  readonly rtpload: string;
}

export interface DirectionResult {
  readonly sent: number;
  readonly lost: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  /** p99 of |latency − median latency|: the jitter hushpay added. */
  readonly addedJitterP99Ms: number | null;
}

export interface LoadResult {
  readonly callsUp: number;
  readonly setupFailed: number;
  readonly setupP50Ms: number;
  readonly setupP99Ms: number;
  readonly callerToAgent: DirectionResult;
  readonly agentToCaller: DirectionResult;
  /** rtpload's own CPU over the window, and sends it made more than 5 ms late. */
  readonly generatorCpuPct: number;
  readonly lateSends: number;
}

interface RtploadReport {
  readonly callerToAgent: DirectionResult;
  readonly agentToCaller: DirectionResult;
  readonly cpuPct: number;
  readonly lateSends: number;
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.floor(q * values.length))]!;
}

/** Starts rtpload and waits for its ports line. */
async function startRtpload(options: LoadOptions, payloadFile: string): Promise<{ child: ChildProcessWithoutNullStreams; ports: number[]; report: Promise<RtploadReport> }> {
  const child = spawn(options.rtpload, ['--streams', String(2 * options.calls), '--warmup-ms', String(options.warmupMs), '--measure-ms', String(options.measureMs), '--payload', payloadFile]);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error(`rtpload did not start: ${stderr}`);
  const { ports } = JSON.parse(first.value) as { ports: number[] };
  const report = (async () => {
    const last = await lines.next();
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
    if (last.done || code !== 0) throw new Error(`rtpload failed (exit ${code}): ${stderr}`);
    return JSON.parse(last.value) as RtploadReport;
  })();
  return { child, ports, report };
}

async function main(options: LoadOptions): Promise<LoadResult> {
  const [hushHost, hushPortText] = options.hushpay.split(':');
  const hushpay: SipAddress = { transport: 'udp', host: hushHost!, port: Number(hushPortText) };
  const dir = mkdtempSync(join(tmpdir(), 'hushpay-load-'));
  const payloadFile = join(dir, 'speech.ul');
  writeFileSync(payloadFile, encode('pcmu', concatPcm(naturalSpeechFiles()[0]!.files.slice(0, 40).map(readPcm16Wav))));
  const rtp = await startRtpload(options, payloadFile);
  const n = options.calls;
  const timers = { T1: 500, T2: 4000, T4: 5000 };

  // SIP on both sides
  const uas: { ua?: SipUserAgent } = {};
  const uac: { ua?: SipUserAgent } = {};
  const agentTransport = await UdpTcpTransport.listen({ host: '127.0.0.1', port: options.agentPort, tcp: false, listener: { message: (m: SipMessage, f: SipAddress) => uas.ua?.receive(m, f), malformed: () => {} } });
  const callerTransport = await UdpTcpTransport.listen({ host: '127.0.0.1', port: 0, tcp: false, listener: { message: (m: SipMessage, f: SipAddress) => uac.ua?.receive(m, f), malformed: () => {} } });
  uas.ua = new SipUserAgent({ transport: agentTransport, clock: systemClock, timers });
  uac.ua = new SipUserAgent({ transport: callerTransport, clock: systemClock, timers });

  const sdpFor = (port: number): string => `v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n`;
  const mediaPort = (sdp: string): number => Number(/m=audio (\d+)/.exec(sdp)![1]);
  /** stream index → the hushpay port it sends to */
  const wiring = new Map<number, number>();

  // the agent side answers call i on stream n + i
  uas.ua.on('invite', (invite, res) => {
    const i = Number(invite.headers.get('X-Load-Call'));
    wiring.set(n + i, mediaPort(invite.sdp));
    void uas.ua!.createUAS(invite, res, { localSdp: sdpFor(rtp.ports[n + i]!) });
  });

  // place the calls at the setup rate, caller i on stream i
  const setup: number[] = [];
  let failed = 0;
  const dialogs: SipDialog[] = [];
  const placing: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    placing.push(
      uac.ua
        .createUAC(`sip:100@${options.hushpay}`, { localSdp: sdpFor(rtp.ports[i]!), target: hushpay, headers: [['X-Load-Call', String(i)]] })
        .then((dialog) => {
          setup.push(performance.now() - started);
          wiring.set(i, mediaPort(dialog.remoteSdp));
          dialogs.push(dialog);
        })
        .catch(() => void failed++),
    );
    await new Promise((r) => setTimeout(r, 1000 / options.setupRateCps));
  }
  await Promise.all(placing);

  // media: wire every stream of a call that is up, then go
  for (const [stream, port] of wiring) if (wiring.has(stream < n ? stream + n : stream - n)) rtp.child.stdin.write(`${stream} ${port}\n`);
  rtp.child.stdin.write('go\n');
  process.stdout.write(JSON.stringify({ event: 'go' }) + '\n');
  const report = await rtp.report;

  const result: LoadResult = {
    callsUp: dialogs.length,
    setupFailed: failed,
    setupP50Ms: quantile(setup, 0.5),
    setupP99Ms: quantile(setup, 0.99),
    callerToAgent: report.callerToAgent,
    agentToCaller: report.agentToCaller,
    generatorCpuPct: report.cpuPct,
    lateSends: report.lateSends,
  };
  // hang up and leave
  await Promise.allSettled(dialogs.map((d) => d.destroy()));
  await uac.ua.close();
  await uas.ua.close();
  await agentTransport.close();
  await callerTransport.close();
  rmSync(dir, { recursive: true, force: true });
  return result;
}

if (process.argv[2]) {
  const result = await main(JSON.parse(process.argv[2]) as LoadOptions);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}
