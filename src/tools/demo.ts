/**
 * `npm run demo` (`hushpay demo`): a whole payment call, by itself, on this machine — the story a
 * new user wants to see before wiring a trunk and a PBX.
 *
 * It starts hushpay in-process on free loopback ports (its own data directory, the sandbox
 * gateway), a sip-sim agent phone as the PBX, a demo agent's login, and the agent's event stream
 * as the desktop would hold it. A sip-sim caller rings, talks, and — once the agent has started a
 * payment through the API — keys a test card (with a typo it takes back with `*`), its expiry
 * and security code. The agent completes the payment; the demo reports what each party saw and
 * heard: the desktop's masked progress and result, and the digits hushpay's own detector finds
 * in what the agent heard and in the recording (none).
 *
 * What it prints is what the desktop received: counts, brand, last four. The test card's number
 * is a public sandbox card, and still it is never printed.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SimAgent, SimCaller } from '../../sip-sim/index.ts';
import type { Call } from '../calls/call.ts';
import { validateConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { startHushpay } from '../server.ts';
import { detectFile } from './detect.ts';

/** A sandbox card the gateway approves (docs/payments.md "Test cards"). */
const DEMO_CARD = '4111111111111111';
const DEMO_EXPIRY = '1230';
const DEMO_CODE = '123';
const AMOUNT_JPY = 1200;

export interface DemoEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

export interface DemoReport {
  readonly callId: string;
  readonly events: readonly DemoEvent[];
  readonly result: Record<string, unknown> | undefined;
  /** Digits hushpay's detector found in the audio the agent heard, and in the recording. */
  readonly agentHeardDigits: number;
  readonly recordingDigits: number;
  readonly recordingPath: string;
}

export interface DemoOptions {
  /** Where each line of the story goes as it happens. */
  readonly say: (line: string) => void;
  readonly dtmf?: 'inband' | 'rfc4733' | 'info';
  /** Keep the demo's data directory (the database and the recording) instead of removing it. */
  readonly keep?: boolean;
}

/** Keys the caller presses: the card with one wrong key taken back by `*`, then expiry and code. */
export function demoKeys(): string {
  return `${DEMO_CARD.slice(0, 14)}9*${DEMO_CARD.slice(14)}${DEMO_EXPIRY}${DEMO_CODE}`;
}

const FIELD_NAMES: Readonly<Record<string, string>> = {
  'payment-card-number': 'card number',
  'expiration-date': 'expiry',
  'security-code': 'security code',
};

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { say } = options;
  const dtmf = options.dtmf ?? 'inband';
  const dataDir = mkdtempSync(join(tmpdir(), 'hushpay-demo-'));
  const recordDir = mkdtempSync(join(tmpdir(), 'hushpay-demo-agent-'));
  const closers: (() => Promise<void>)[] = [];
  try {
    const agent = await SimAgent.listen({ host: '127.0.0.1', port: 0, record: (n) => join(recordDir, `agent-${n}.wav`) });
    closers.push(() => agent.close());
    const config = validateConfig(
      {
        sip: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        dataDir,
        tenants: [{ id: 'demo', name: 'Demo shop', numbers: ['*'], pbx: agent.uri('agents'), payments: { language: 'en', prompts: 'speech' } }],
      },
      {},
    );
    // hushpay's own log goes nowhere here: the story is what the demo prints
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const hushpay = await startHushpay(config, { logger: createLogger({ destination: quiet }) });
    closers.push(() => hushpay.close());
    const sip = hushpay.port.listening[0] ?? '';
    say(`hushpay is up: SIP ${sip}, agent page ${hushpay.httpUrl}, sandbox gateway, store ${join(dataDir, 'hushpay.db')}`);

    const password = randomBytes(12).toString('base64url');
    await hushpay.store.users.create({ tenantId: 'demo', username: 'demo-agent', role: 'agent', password });
    const base = hushpay.httpUrl;
    const login = await fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'demo-agent', password }) });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const post = async (path: string, body: object): Promise<{ status: number; json: Record<string, unknown> }> => {
      const r = await fetch(base + path, { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    say('the agent "demo-agent" logged in to the desktop and opened its event stream');

    const events: DemoEvent[] = [];
    let finished: (() => void) | undefined;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/events`, { headers: { cookie, origin: base } } as never);
    closers.push(async () => ws.close());
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('the event stream did not open')));
    });
    const lastCount = new Map<string, number>();
    ws.addEventListener('message', (m) => {
      const e = JSON.parse(String(m.data)) as DemoEvent;
      events.push(e);
      const d = e.data;
      if (e.type === 'capture.progress') {
        const field = String(d['field']);
        const entered = Number(d['entered']);
        const before = lastCount.get(field) ?? 0;
        lastCount.set(field, entered);
        if (entered < before) say(`  the caller pressed * to take back a wrong key: ${FIELD_NAMES[field] ?? field} ${entered} of ${String(d['expected'])}`);
        else if (d['valid'] === true) say(`  ${FIELD_NAMES[field] ?? field}: ${entered} of ${String(d['expected'])} ✓${d['brand'] ? ` ${String(d['brand'])}` : ''}${d['masked'] ? ` ${String(d['masked'])}` : ''}`);
      } else if (e.type === 'capture.error') say(`  ${FIELD_NAMES[String(d['field'])] ?? String(d['field'])}: ${String(d['error'])}, the caller is asked again`);
      else if (e.type === 'payment.ready') say('the caller has keyed everything: the agent presses Complete');
      else if (e.type === 'payment.authorizing') say('sent to the card company (the sandbox gateway)…');
      else if (e.type === 'payment.completed' || e.type === 'payment.failed' || e.type === 'payment.cancelled') finished?.();
    });

    const connected = new Promise<Call>((resolve) => hushpay.b2bua.once('call', (call: Call) => call.on('active', () => resolve(call))));
    const caller = await SimCaller.start({ host: '127.0.0.1', port: 0 });
    closers.push(() => caller.close());
    const keys = demoKeys();
    const callEnded = caller.placeCall({
      to: `sip:0120000000@${sip.replace(/^udp:/, '')}`,
      fromUser: '0312345678',
      // the caller talks (the recorded welcome prompt stands in for speech) and keys after it
      play: new URL('../payments/prompts/en/enter-card-number.wav', import.meta.url).pathname,
      digits: keys,
      dtmf,
      afterMs: 6_000,
      toneMs: 100,
      gapMs: 100,
      // a backstop: the caller hangs up once the result is in
      hangupAfterMs: 6_000 + keys.length * 200 + 40_000,
    });
    const call = await connected;
    say(`a caller (03-xxxx-5678) rang; hushpay put the call through to the agent as ${call.id}`);
    await post(`/v1/calls/${call.id}/claim`, {});
    const started = await post(`/v1/calls/${call.id}/payments`, { idempotencyKey: `demo-${call.id}`, amount: AMOUNT_JPY, currency: 'JPY' });
    if (started.status !== 201) throw new Error(`the payment did not start: ${started.status} ${JSON.stringify(started.json)}`);
    say(`the agent started a payment of ¥${AMOUNT_JPY.toLocaleString('en')} (POST /v1/calls/${call.id}/payments → ${started.status}); the caller hears the prompts, the agent does not`);
    say(`the caller keys the card (${dtmf === 'inband' ? 'in-band tones' : dtmf === 'rfc4733' ? 'RFC 4733 events' : 'SIP INFO'}) while the agent watches:`);

    const ready = await waitFor(events, (e) => e.type === 'payment.ready' || e.type === 'payment.failed', 40_000);
    if (ready.type === 'payment.ready') await post(`/v1/payments/${String(started.json['id'])}`, { status: 'complete' });
    await withTimeout(done, 30_000);
    const end = events.find((e) => e.type === 'payment.completed' || e.type === 'payment.failed' || e.type === 'payment.cancelled');
    const result = end?.data['result'] as Record<string, unknown> | undefined;
    if (end?.type === 'payment.completed' && result) {
      say(`APPROVED: approval number ${String(result['approvalNumber'])}, ${String(result['brand'])} •••• ${String(result['last4'])}, token ${String(result['token'])}, ¥${Number(result['amount']).toLocaleString('en')}`);
    } else {
      say(`not approved: ${end ? `${end.type} ${String(end.data['reason'] ?? '')}` : 'no result in time'}`);
    }

    // the caller says goodbye and hangs up; then what each listener got is checked by hushpay's own detector
    await sleep(1_000);
    await caller.calls[0]?.hangup();
    await callEnded;
    const agentCall = await agent.nextCall();
    const agentSummary = await agentCall.ended;
    const agentHeard = agentSummary.recording ? (await detectFile(agentSummary.recording)).digits.length : Number.NaN;
    const recordingPath = join(dataDir, 'recordings', `${call.id}.wav`);
    const recordingDigits = (await detectFile(recordingPath)).digits.length;
    say(`the agent heard the caller talk, then a flat beep where each key was: hushpay's detector finds ${agentHeard} digits in the agent's audio`);
    say(`the call recording (${options.keep ? recordingPath : 'removed with the demo'}) holds ${recordingDigits} digits; the database holds brand, last four and the result, never the card`);
    return { callId: call.id, events, result, agentHeardDigits: agentHeard, recordingDigits, recordingPath };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    if (!options.keep) rmSync(dataDir, { recursive: true, force: true });
    rmSync(recordDir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or nothing after `ms` (the timer cleared either way, so the process can end). */
async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The first event (seen or to come, polled) that passes `test`. */
async function waitFor(events: readonly DemoEvent[], test: (e: DemoEvent) => boolean, timeoutMs: number): Promise<DemoEvent> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(test);
    if (found) return found;
    if (Date.now() > until) throw new Error(`the demo waited ${timeoutMs / 1000} s and the caller never finished keying`);
    await sleep(50);
  }
}
