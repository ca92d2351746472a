// rtpengine as a yardstick for the benchmark: pushes exactly the audio hushpay is measured on
// through a real rtpengine (Debian rtpengine-daemon 10.5.3.5, userspace, 127.0.0.1 only) with
// in-band DTMF blocking, and hands back the output aligned sample for sample with the input, so
// the bench can grade both maskers the same way.
//
// Everything is native: a small ng-protocol client (bencode over UDP, as in rtpengine's
// docs/ng_control_protocol.md), an RTP sender paced in real time and a receiver. Each run starts
// its own rtpengine child and stops it at the end, on errors too.
//
// What the ng session does (the messages shared/tools/ngclient.py uses with this version):
//   offer A → answer B, both `c=127.0.0.1`, PCMU only (no telephone-event, so rtpengine decodes
//   the audio and runs spandsp's in-band detector), `flags: ["trust address"]`; then
//   `block DTMF` with A's from-tag, `DTMF-security` and `delay-buffer`.
//
// Measured facts this module relies on (10.5.3.5; figures in the commit message that added it):
// - rtpengine keeps A's RTP sequence numbers and timestamps on the B leg, with and without a
//   delay buffer; the buffer delays packets in time only. Placing each payload at
//   (timestamp − first sent timestamp) therefore already puts out[i] beside in[i]; the lag
//   search below verifies that and compensates if it ever finds otherwise.
// - Its PCMU decode → encode maps every byte to itself except 0x7F (μ-law −0) → 0xFF (+0), so
//   output and input are compared by linear value (sameUlaw), not by byte.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import type { Socket } from 'node:dgram';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseRtp, serializeRtp } from '../../src/media/rtp.ts';

// --- public API ------------------------------------------------------------------------------

export interface RtpengineRun {
  /** Raw μ-law, same length and alignment as the input: out[i] is what rtpengine made of in[i]. Lost packets are 0xFF. */
  output: Uint8Array;
  /** p50 of per-packet latency (receive at B − send at A of the same RTP timestamp), ms. */
  addedLatencyMs: number;
  /** The delay-buffer asked for, ms. */
  delayBufferMs: number;
  /** Per-packet latency percentiles, ms. */
  latencyMs: { p50: number; p90: number; max: number };
  /** Lag (samples) found by matching output to input after placing packets by RTP timestamp; it
   *  has been compensated in `output`. 0 means rtpengine's timestamps already align the streams. */
  lagSamples: number;
  /** Fraction of samples, after alignment, whose linear value is unchanged (0…1). */
  unchangedFraction: number;
  /** 20 ms packets sent at A and PCMU packets received at B. */
  packets: { sent: number; received: number };
}

export interface RtpengineOptions {
  /** `delay-buffer` of the `block DTMF` request, ms (0 = no buffer). */
  delayBufferMs: number;
  /** `DTMF-security`; default 'silence'. */
  security?: 'silence' | 'tone';
  /** Send `block DTMF` at all; default true. false = plain forwarding (a passthrough baseline). */
  block?: boolean;
}

const RTPENGINE = 'rtpengine';

let availability: { ok: true } | { ok: false; why: string } | undefined;

/**
 * Whether rtpengine can be used here: the binary is on PATH, and a throw-away instance (same
 * options as the real runs) reports "Startup complete" and is still running 0.5 s later.
 * Checked once per process (costs those 0.5 s); the result is cached. Every run then also
 * waits for an ng `ping` answer and fails with rtpengine's log if there is none.
 */
export function rtpengineAvailable(): { ok: true } | { ok: false; why: string } {
  availability ??= probeAvailability();
  return availability;
}

/**
 * Pushes `inputUlaw` (raw μ-law, 8 kHz) through a fresh rtpengine as 20 ms PCMU RTP packets,
 * paced in real time (a 10 s input takes about 10 s plus delay-buffer), with in-band DTMF
 * blocking on, and returns the output aligned to the input.
 */
export async function runRtpengine(inputUlaw: Uint8Array, options: RtpengineOptions): Promise<RtpengineRun> {
  const { delayBufferMs } = options;
  if (!Number.isInteger(delayBufferMs) || delayBufferMs < 0 || delayBufferMs > 1000) {
    throw new RangeError(`runRtpengine: delayBufferMs must be an integer 0…1000, got ${delayBufferMs}`);
  }
  if (inputUlaw.length === 0) throw new RangeError('runRtpengine: empty input');
  const daemon = await startDaemon();
  try {
    const call = await streamThroughCall(daemon, inputUlaw, options);
    return alignAndMeasure(inputUlaw, call, delayBufferMs);
  } finally {
    await daemon.stop();
  }
}

/**
 * Sample ranges [start, end) where `output` differs from `input` (compared by linear value, so
 * μ-law −0/+0 count as equal), with differing runs less than 10 samples apart merged.
 * Both must be aligned (sample 0 = sample 0); only the common length is compared.
 */
export function maskedSpansOf(input: Uint8Array, output: Uint8Array): [number, number][] {
  const n = Math.min(input.length, output.length);
  const spans: [number, number][] = [];
  let start = -1;
  let lastDiff = -1;
  for (let i = 0; i < n; i++) {
    if (sameUlaw(input[i]!, output[i]!)) continue;
    if (start >= 0 && i - lastDiff - 1 < MERGE_GAP_SAMPLES) {
      lastDiff = i;
      continue;
    }
    if (start >= 0) spans.push([start, lastDiff + 1]);
    start = i;
    lastDiff = i;
  }
  if (start >= 0) spans.push([start, lastDiff + 1]);
  return spans;
}

// --- constants ---------------------------------------------------------------------------------

const SAMPLE_RATE = 8000;
const PACKET_MS = 20;
const PACKET_SAMPLES = (SAMPLE_RATE * PACKET_MS) / 1000;
const PCMU = 0;
const ULAW_SILENCE = 0xff;
const MERGE_GAP_SAMPLES = 10;
const LOCALHOST = '127.0.0.1';
const PORT_RANGE = 100;

/** Bounded waits. */
const PROBE_MS = 500;
const START_TIMEOUT_MS = 5000;
const PING_EVERY_MS = 50;
const NG_TIMEOUT_MS = 2000;
const STOP_TIMEOUT_MS = 2000;
/** After the last packet is due back (send + delay-buffer), how long missing packets are awaited. */
const DRAIN_GRACE_MS = 500;
/** Lag search reaches this far beyond the delay-buffer on both sides. */
const LAG_MARGIN_MS = 100;

// --- availability probe --------------------------------------------------------------------------

function daemonArgs(ngPort: number, portMin: number, logLevel: number): string[] {
  return [
    '--config-file=none',
    '--table=-1', // userspace forwarding only: no kernel module, no iptables
    `--interface=${LOCALHOST}`,
    `--listen-ng=${LOCALHOST}:${ngPort}`,
    `--port-min=${portMin}`,
    `--port-max=${portMin + PORT_RANGE - 1}`,
    '--foreground',
    '--log-stderr',
    `--log-level=${logLevel}`,
  ];
}

/** A random media port window; 100 ports are plenty for one call (4 in use) and keep parallel runs apart. */
function randomPortMin(): number {
  return 20000 + PORT_RANGE * randomInt(0, 400);
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function probeAvailability(): { ok: true } | { ok: false; why: string } {
  if (onPath(RTPENGINE) === undefined) {
    return { ok: false, why: 'rtpengine not found on PATH (Debian/Ubuntu: apt-get install rtpengine-daemon)' };
  }
  // Synchronous on purpose (the bench asks before it runs anything): spawnSync returns when the
  // timeout kills the instance, or earlier if it dies at start-up. ng port 0 = any free port.
  const res = spawnSync(RTPENGINE, daemonArgs(0, randomPortMin(), 6), {
    encoding: 'utf8',
    timeout: PROBE_MS,
    killSignal: 'SIGKILL', // bounded even if it ignored SIGTERM; it holds no state to clean up
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = res.stderr ?? '';
  const timedOut = (res.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (res.error && !timedOut) return { ok: false, why: `cannot run rtpengine: ${res.error.message}` };
  const started = /Startup complete/.test(log);
  if (timedOut && started) return { ok: true };
  if (!timedOut) return { ok: false, why: `rtpengine exited at start-up (exit ${String(res.status ?? res.signal)}): ${tail(log, 600)}` };
  return { ok: false, why: `rtpengine did not report "Startup complete" within ${PROBE_MS} ms: ${tail(log, 600)}` };
}

function tail(text: string, chars: number): string {
  const t = text.trim();
  return t.length <= chars ? t : `…${t.slice(t.length - chars)}`;
}

// --- bencode (the ng protocol's encoding) --------------------------------------------------------

type Bencoded = number | string | Bencoded[] | { [key: string]: Bencoded };

function bencode(value: Bencoded): Buffer {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`bencode: ${value} is not an integer`);
    return Buffer.from(`i${value}e`);
  }
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);
  }
  if (Array.isArray(value)) return Buffer.concat([Buffer.from('l'), ...value.map(bencode), Buffer.from('e')]);
  const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const parts: Buffer[] = [Buffer.from('d')];
  for (const key of keys) parts.push(bencode(key), bencode(value[key]!));
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}

/** Decodes one value at `pos`; byte strings come back as UTF-8 text (the ng replies are text). */
function bdecode(buf: Buffer, pos = 0): [Bencoded, number] {
  const c = buf[pos];
  if (c === undefined) throw new SyntaxError('bdecode: truncated');
  if (c === 0x69 /* i */) {
    const end = buf.indexOf(0x65 /* e */, pos);
    if (end < 0) throw new SyntaxError('bdecode: unterminated integer');
    return [Number(buf.toString('latin1', pos + 1, end)), end + 1];
  }
  if (c === 0x6c /* l */) {
    const list: Bencoded[] = [];
    let p = pos + 1;
    while (buf[p] !== 0x65) {
      const [v, next] = bdecode(buf, p);
      list.push(v);
      p = next;
    }
    return [list, p + 1];
  }
  if (c === 0x64 /* d */) {
    const dict: { [key: string]: Bencoded } = {};
    let p = pos + 1;
    while (buf[p] !== 0x65) {
      const [k, afterKey] = bdecode(buf, p);
      if (typeof k !== 'string') throw new SyntaxError('bdecode: dictionary key is not a string');
      const [v, next] = bdecode(buf, afterKey);
      dict[k] = v;
      p = next;
    }
    return [dict, p + 1];
  }
  const colon = buf.indexOf(0x3a /* : */, pos);
  if (colon < 0) throw new SyntaxError('bdecode: bad string length');
  const len = Number(buf.toString('latin1', pos, colon));
  if (!Number.isInteger(len) || len < 0 || colon + 1 + len > buf.length) throw new SyntaxError('bdecode: bad string');
  return [buf.toString('utf8', colon + 1, colon + 1 + len), colon + 1 + len];
}

// --- ng client -----------------------------------------------------------------------------------

type NgReply = { [key: string]: Bencoded };

class NgClient {
  readonly #socket: Socket;
  readonly #port: number;
  readonly #pending = new Map<string, { resolve: (r: NgReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  private constructor(socket: Socket, port: number) {
    this.#socket = socket;
    this.#port = port;
    socket.on('message', (msg) => this.#onMessage(msg));
    socket.on('error', (err) => this.#failAll(err));
  }

  static async open(port: number): Promise<NgClient> {
    const socket = await bindUdp();
    return new NgClient(socket, port);
  }

  #onMessage(msg: Buffer): void {
    const space = msg.indexOf(0x20);
    if (space < 0) return;
    const cookie = msg.toString('latin1', 0, space);
    const waiter = this.#pending.get(cookie);
    if (!waiter) return; // a late reply to a timed-out ping
    this.#pending.delete(cookie);
    clearTimeout(waiter.timer);
    try {
      const [reply] = bdecode(msg, space + 1);
      if (typeof reply !== 'object' || Array.isArray(reply)) throw new SyntaxError('ng reply is not a dictionary');
      waiter.resolve(reply);
    } catch (err) {
      waiter.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** One request; rejects on timeout or when rtpengine answers `result: error`. */
  command(request: { [key: string]: Bencoded }, timeoutMs = NG_TIMEOUT_MS): Promise<NgReply> {
    const cookie = randomBytes(6).toString('hex');
    return new Promise<NgReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(cookie);
        reject(new Error(`ng ${String(request['command'])}: no reply from 127.0.0.1:${this.#port} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(cookie, {
        resolve: (reply) => {
          if (reply['result'] === 'error') {
            reject(new Error(`ng ${String(request['command'])}: ${String(reply['error-reason'] ?? 'error')}`));
          } else resolve(reply);
        },
        reject,
        timer,
      });
      this.#socket.send(Buffer.concat([Buffer.from(`${cookie} `), bencode(request)]), this.#port, LOCALHOST, (err) => {
        if (!err) return;
        const waiter = this.#pending.get(cookie);
        if (!waiter) return;
        this.#pending.delete(cookie);
        clearTimeout(waiter.timer);
        reject(err);
      });
    });
  }

  #failAll(err: Error): void {
    for (const [cookie, waiter] of this.#pending) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
      this.#pending.delete(cookie);
    }
  }

  close(): void {
    this.#failAll(new Error('ng client closed'));
    this.#socket.close();
  }
}

function bindUdp(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, LOCALHOST, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

async function freeUdpPort(): Promise<number> {
  const socket = await bindUdp();
  const { port } = socket.address();
  socket.close();
  return port;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- the rtpengine child -------------------------------------------------------------------------

interface Daemon {
  ng: NgClient;
  stop(): Promise<void>;
}

/** Starts rtpengine on a free ng port and a random media port range; retries if another
 *  process took the ng port between our check and rtpengine's bind. */
async function startDaemon(): Promise<Daemon> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startDaemonOnce();
    } catch (err) {
      lastError = err instanceof Error ? err : new Error(String(err));
      if (!/already in use/i.test(lastError.message)) break;
    }
  }
  throw lastError ?? new Error('rtpengine did not start');
}

async function startDaemonOnce(): Promise<Daemon> {
  const ngPort = await freeUdpPort();
  const child = spawn(RTPENGINE, daemonArgs(ngPort, randomPortMin(), 5), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    log = (log + s).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitInfo: string | undefined;
  child.once('exit', (code, signal) => (exitInfo = `exit ${String(code ?? signal)}`));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  // Never leave the child behind, even if the caller's process exits mid-run.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let ng: NgClient | undefined;
  const stop = async (): Promise<void> => {
    ng?.close();
    ng = undefined;
    await stopChild(child, exited);
    child.stderr?.destroy(); // a grandchild holding the pipe must not keep this process alive
    process.off('exit', killOnExit);
  };

  try {
    ng = await NgClient.open(ngPort);
    const deadline = performance.now() + START_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new Error(`cannot run rtpengine: ${spawnError.message}`);
      if (exitInfo !== undefined) throw new Error(`rtpengine exited at start-up (${exitInfo}): ${tail(log, 600)}`);
      try {
        const pong = await ng.command({ command: 'ping' }, PING_EVERY_MS * 2);
        if (pong['result'] === 'pong') break;
        throw new Error(`rtpengine answered ping with ${JSON.stringify(pong)}`);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('rtpengine answered')) throw err;
      }
      if (performance.now() > deadline) {
        throw new Error(`rtpengine did not answer ng ping on 127.0.0.1:${ngPort} within ${START_TIMEOUT_MS} ms: ${tail(log, 600)}`);
      }
      await delay(PING_EVERY_MS);
    }
    return { ng, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

// --- one call: offer/answer, block DTMF, RTP out at A and in at B ------------------------------------

function sdp(port: number): string {
  return [
    'v=0',
    `o=- 1 1 IN IP4 ${LOCALHOST}`,
    's=-',
    `c=IN IP4 ${LOCALHOST}`,
    't=0 0',
    `m=audio ${port} RTP/AVP ${PCMU}`,
    `a=rtpmap:${PCMU} PCMU/8000`,
    `a=ptime:${PACKET_MS}`,
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function mediaPort(reply: NgReply): number {
  const text = reply['sdp'];
  if (typeof text !== 'string') throw new Error('ng reply without sdp');
  const m = /^m=audio (\d+) /m.exec(text);
  if (!m?.[1]) throw new Error(`no m=audio line in rtpengine's SDP: ${text}`);
  return Number(m[1]);
}

interface CallCapture {
  packetCount: number;
  sentAt: Float64Array;
  /** By packet index (timestamp offset / 160): payload and receive time. */
  received: Map<number, { payload: Uint8Array; at: number }>;
  /** PCMU packets whose timestamp fell outside the sent range. */
  stray: number;
}

async function streamThroughCall(daemon: Daemon, input: Uint8Array, options: RtpengineOptions): Promise<CallCapture> {
  const { ng } = daemon;
  const a = await bindUdp();
  let b: Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  let socketError: Error | undefined;
  const onSocketError = (err: Error): void => {
    socketError ??= err;
  };
  a.on('error', onSocketError);
  try {
    b = await bindUdp();
    b.on('error', onSocketError);
    const callId = `hushpay-bench-${randomBytes(6).toString('hex')}`;
    const common = { 'call-id': callId, flags: ['trust address'], replace: ['origin', 'session connection'] };
    await ng.command({ command: 'offer', ...common, 'from-tag': 'tagA', sdp: sdp(a.address().port) });
    const answer = await ng.command({ command: 'answer', ...common, 'from-tag': 'tagA', 'to-tag': 'tagB', sdp: sdp(b.address().port) });
    const toB = mediaPort(answer); // where A sends so that rtpengine forwards to B
    if (options.block !== false) {
      await ng.command({
        command: 'block DTMF',
        'call-id': callId,
        'from-tag': 'tagA',
        'DTMF-security': options.security ?? 'silence',
        'delay-buffer': options.delayBufferMs,
      });
    }

    const packetCount = Math.ceil(input.length / PACKET_SAMPLES);
    const ssrc = randomInt(0, 2 ** 32);
    const seq0 = randomInt(0, 2 ** 15);
    const ts0 = randomInt(0, 2 ** 31);
    const capture: CallCapture = { packetCount, sentAt: new Float64Array(packetCount), received: new Map(), stray: 0 };

    b.on('message', (msg) => {
      const at = performance.now();
      let pkt;
      try {
        pkt = parseRtp(msg);
      } catch {
        return;
      }
      if (pkt.payloadType !== PCMU) return;
      const offset = (pkt.timestamp - ts0) >>> 0;
      const k = offset / PACKET_SAMPLES;
      if (!Number.isInteger(k) || k >= packetCount) {
        capture.stray++;
        return;
      }
      if (!capture.received.has(k)) capture.received.set(k, { payload: Uint8Array.from(pkt.payload), at });
    });
    a.on('message', () => {}); // B→A direction: nothing is sent there, ignore anything that comes

    // Paced sender: packet k is due at t0 + 20k ms; a late timer sends what is overdue at once.
    const packets: Uint8Array[] = [];
    for (let k = 0; k < packetCount; k++) {
      const payload = new Uint8Array(PACKET_SAMPLES).fill(ULAW_SILENCE);
      payload.set(input.subarray(k * PACKET_SAMPLES, (k + 1) * PACKET_SAMPLES));
      packets.push(
        serializeRtp({
          marker: k === 0,
          payloadType: PCMU,
          sequenceNumber: (seq0 + k) & 0xffff,
          timestamp: (ts0 + k * PACKET_SAMPLES) >>> 0,
          ssrc,
          payload,
        }),
      );
    }
    const sender = a;
    const t0 = performance.now() + 5;
    await new Promise<void>((resolve, reject) => {
      let k = 0;
      const tick = (): void => {
        timer = undefined;
        try {
          if (socketError) throw socketError;
          while (k < packetCount && performance.now() >= t0 + k * PACKET_MS) {
            capture.sentAt[k] = performance.now();
            sender.send(packets[k]!, toB, LOCALHOST);
            k++;
          }
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (k < packetCount) timer = setTimeout(tick, Math.max(0, t0 + k * PACKET_MS - performance.now()));
        else resolve();
      };
      tick();
    });

    // Drain: every packet back, or the last one's due time (send + delay-buffer) plus a grace.
    const drainUntil = capture.sentAt[packetCount - 1]! + options.delayBufferMs + DRAIN_GRACE_MS;
    while (capture.received.size < packetCount && performance.now() < drainUntil) {
      await new Promise<void>((resolve) => (timer = setTimeout(resolve, 10)));
      timer = undefined;
    }
    if (socketError) throw socketError;
    if (capture.received.size === 0) {
      throw new Error(`rtpengine forwarded none of ${packetCount} packets (${capture.stray} with unexpected timestamps)`);
    }
    return capture;
  } finally {
    clearTimeout(timer);
    a.close();
    b?.close();
  }
}

// --- alignment and latency -----------------------------------------------------------------------

/** μ-law bytes with the same linear value: equal, or the two zeros 0x7F (−0) and 0xFF (+0). */
function sameUlaw(x: number, y: number): boolean {
  return x === y || ((x & 0x7f) === 0x7f && (y & 0x7f) === 0x7f);
}

/** Samples i (stepping by `step`) with out[i + lag] same as in[i], over the overlap. */
function matchesAtLag(input: Uint8Array, placed: Uint8Array, lag: number, step: number): number {
  let count = 0;
  const from = Math.max(0, -lag);
  const to = Math.min(input.length, placed.length - lag);
  for (let i = from; i < to; i += step) if (sameUlaw(input[i]!, placed[i + lag]!)) count++;
  return count;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function alignAndMeasure(input: Uint8Array, call: CallCapture, delayBufferMs: number): RtpengineRun {
  // Place every payload by RTP timestamp relative to the first packet sent; gaps stay 0xFF.
  const placed = new Uint8Array(call.packetCount * PACKET_SAMPLES).fill(ULAW_SILENCE);
  const latencies: number[] = [];
  for (const [k, { payload, at }] of call.received) {
    placed.set(payload.subarray(0, placed.length - k * PACKET_SAMPLES), k * PACKET_SAMPLES);
    latencies.push(at - call.sentAt[k]!);
  }
  latencies.sort((x, y) => x - y);

  // Verify the alignment: the lag that maximises unchanged samples (coarse pass on every 5th
  // sample, then exact counts). Ties keep lag 0, so silence or constant input stays put.
  const reach = Math.round(((delayBufferMs + LAG_MARGIN_MS) * SAMPLE_RATE) / 1000);
  let lag = 0;
  let best = matchesAtLag(input, placed, 0, 5);
  for (let l = -reach; l <= reach; l++) {
    if (l === 0) continue;
    const m = matchesAtLag(input, placed, l, 5);
    if (m > best) {
      best = m;
      lag = l;
    }
  }
  if (lag !== 0 && matchesAtLag(input, placed, lag, 1) <= matchesAtLag(input, placed, 0, 1)) lag = 0;

  const output = new Uint8Array(input.length).fill(ULAW_SILENCE);
  for (let i = Math.max(0, -lag); i < input.length && i + lag < placed.length; i++) output[i] = placed[i + lag]!;
  const unchanged = matchesAtLag(input, output, 0, 1);

  return {
    output,
    addedLatencyMs: quantile(latencies, 0.5),
    delayBufferMs,
    latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), max: latencies[latencies.length - 1] ?? Number.NaN },
    lagSamples: lag,
    unchangedFraction: unchanged / input.length,
    packets: { sent: call.packetCount, received: call.received.size },
  };
}
