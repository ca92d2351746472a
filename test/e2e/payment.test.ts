/**
 * The whole path, end to end, over loopback: hushpay, a sip-sim caller, a sip-sim agent, a
 * WebSocket client as the agent's desktop, the sandbox gateway as its own HTTP server, and a
 * webhook receiver. The caller talks, the agent starts a payment through the API, the caller keys
 * a card number (with a typo taken back by `*`), expiry and security code — once in-band, once as
 * RFC 4733 events, once as SIP INFO. Then:
 * - what the agent heard and the recording decode to no digit, by hushpay's detector and by
 *   multimon-ng;
 * - the desktop got its progress in order and an approved result with a token;
 * - no file hushpay wrote (database, recording, log), no event, no API answer and no webhook
 *   holds the card number or the security code, in any form.
 */

import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call } from '../../src/calls/call.ts';
import { systemClock } from '../../src/clock.ts';
import { decodeWavToInt16, readWav } from '../../src/media/wav.ts';
import { startSandboxServer } from '../../src/payments/sandbox.ts';
import { detectFile } from '../../src/tools/detect.ts';
import { verify } from '../../src/webhooks/signature.ts';
import { type DtmfMethod, SimAgent, SimCaller } from '../../sip-sim/index.ts';
import { Client } from '../desktop/support.ts';
import { startTestHushpay } from '../support/hushpay.ts';
import { decodeMultimon } from '../support/referees.ts';
import { concatPcm, naturalSpeechFiles, readPcm16Wav } from '../support/corpus.ts';
import { Receiver } from '../webhooks/receiver.ts';
import { panSpellings } from '../support/cardData.ts';

const CARD = '4111111111111111';
const EXPIRY = '1230';
const CODE = '737';
// the caller slips on the 15th key and takes it back with *
const KEYS = `${CARD.slice(0, 14)}9*${CARD.slice(14)}${EXPIRY}${CODE}`;
const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** About four seconds of a person talking (Asterisk's recorded English prompts). */
function speech(): Int16Array {
  const set = naturalSpeechFiles().find((s) => s.language === 'en')!;
  const parts: Int16Array[] = [];
  let samples = 0;
  for (const f of set.files) {
    const p = readPcm16Wav(f);
    parts.push(p);
    samples += p.length;
    if (samples > 8000 * 4) break;
  }
  return concatPcm(parts).subarray(0, 8000 * 4);
}

/** Every spelling of the card number a file or a message might hold it in. */
function cardForms(): { name: string; bytes: Buffer }[] {
  return [...panSpellings(CARD)].map(([name, bytes]) => ({ name, bytes }));
}

/**
 * The security code and the expiry where they would be values (a JSON string or number, a
 * key=value): three or four digits alone would also match inside ports, times and random ids.
 */
const AS_VALUE = (v: string): RegExp => new RegExp(`"${v}"|[:=]${v}(?![0-9])`);
const CODE_AS_VALUE = AS_VALUE(CODE);
const EXPIRY_AS_VALUE = new RegExp(`${AS_VALUE(EXPIRY).source}|"12/30"`);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('a caller pays during a call, end to end', () => {
  it('the scans below find what they look for (a control: a scan that finds nothing proves nothing)', () => {
    expect(cardForms().map((f) => f.bytes.length)).toEqual(expect.arrayContaining([16, 19, 32, 8]));
    expect(CODE_AS_VALUE.test(`{"securityCode":"${CODE}"}`)).toBe(true);
    expect(CODE_AS_VALUE.test(`code=${CODE}&x=1`)).toBe(true);
    expect(CODE_AS_VALUE.test(`"at":"2026-11-21T07:37:00.${CODE}Z","port":4${CODE}1`)).toBe(false);
    expect(EXPIRY_AS_VALUE.test('{"expiry":"12/30"}')).toBe(true);
    expect(EXPIRY_AS_VALUE.test(`{"exp":${EXPIRY}}`)).toBe(true);
  });

  it.each<DtmfMethod>(['inband', 'rfc4733', 'info'])(
    'keyed %s: approved with a token, progress in order, nothing heard, nothing kept',
    async (dtmf) => {
      const sandbox = await startSandboxServer({ host: '127.0.0.1', port: 0, clock: systemClock });
      cleanup.push(() => sandbox.close());
      const receiver = await Receiver.start();
      cleanup.push(() => receiver.close());
      const agentDir = mkdtempSync(join(tmpdir(), 'e2e-agent-'));
      const agent = await SimAgent.listen({ record: (n) => join(agentDir, `agent-${n}.wav`) });
      cleanup.push(() => agent.close());
      const hushpay = await startTestHushpay({
        pbx: agent.uri('agents'),
        env: { SHOP_WEBHOOK_SECRET: SECRET },
        raw: {
          tenants: [
            {
              id: 'shop',
              numbers: ['*'],
              pbx: agent.uri('agents'),
              payments: { gateway: { type: 'sandbox', url: sandbox.url }, language: 'en', prompts: 'speech' },
              webhooks: { url: `${new URL(receiver.url).origin}/tenant`, secretEnv: 'SHOP_WEBHOOK_SECRET' },
            },
          ],
        },
      });
      cleanup.push(() => hushpay.close());
      await hushpay.store.users.create({ tenantId: 'shop', username: 'aiko', role: 'agent', password: 'correct horse battery staple' });
      const desk = await Client.login(hushpay.httpUrl, 'aiko', 'correct horse battery staple');
      const stream = await desk.events();

      const connected = new Promise<Call>((resolve) => hushpay.b2bua.once('call', (call: Call) => call.on('active', () => resolve(call))));
      const caller = await SimCaller.start();
      cleanup.push(() => caller.close());
      const heardByCaller = join(agentDir, 'caller.wav');
      const ended = caller.placeCall({ to: `sip:0120000000@127.0.0.1:${hushpay.sipPort}`, fromUser: '0312345678', play: speech(), digits: KEYS, dtmf, afterMs: 5_000, toneMs: 90, gapMs: 90, hangupAfterMs: 30_000, record: heardByCaller });
      const call = await connected;

      // the agent takes the call and starts the payment through the API
      expect((await desk.post(`/v1/calls/${call.id}/claim`)).status).toBe(200);
      // a status callback only on the tenant's webhook origin: hushpay posts nowhere else
      const elsewhere = await desk.post(`/v1/calls/${call.id}/payments`, { idempotencyKey: `probe-${dtmf}`, amount: 1, currency: 'JPY', statusCallback: 'http://169.254.169.254/latest/meta-data' });
      expect([elsewhere.status, elsewhere.json.error.code]).toEqual([422, 'status_callback_not_allowed']);
      const started = await desk.post(`/v1/calls/${call.id}/payments`, { idempotencyKey: `order-${dtmf}`, amount: 4_800, currency: 'JPY', statusCallback: `${new URL(receiver.url).origin}/status?order=${dtmf}` });
      expect(started.status).toBe(201);
      const paymentId = started.json.id as string;
      await stream.waitFor((e) => e.type === 'payment.ready' && e.paymentId === paymentId, 25_000);
      expect((await desk.post(`/v1/payments/${paymentId}`, { status: 'complete' })).status).toBe(202);
      const completed = await stream.waitFor((e) => e.paymentId === paymentId && (e.type === 'payment.completed' || e.type === 'payment.failed'), 15_000);
      await caller.calls[0]?.hangup();
      await ended;
      const agentCall = await (await agent.nextCall()).ended;
      await stream.waitFor((e) => e.type === 'call.ended' && e.callId === call.id);

      // the desktop: an approved result with a token, after progress in order
      expect(completed.type).toBe('payment.completed');
      expect(completed.data['result']).toMatchObject({ status: 'approved', brand: 'visa', last4: '1111', amount: 4_800, token: expect.stringMatching(/^sbx_tok_/) });
      const mine = stream.events.filter((e) => e.paymentId === paymentId);
      const types = mine.map((e) => e.type);
      expect(types[0]).toBe('payment.started');
      expect(types.indexOf('payment.ready')).toBeLessThan(types.indexOf('payment.authorizing'));
      expect(types.indexOf('payment.authorizing')).toBeLessThan(types.indexOf('payment.completed'));
      const card = mine.filter((e) => e.type === 'capture.progress' && e.data['field'] === 'payment-card-number').map((e) => e.data['entered'] as number);
      // 0, 1 … 14, 15 (the slip), 14 (taken back), 15, 16 (and 16 again as the field closes)
      expect(card.slice(0, 18)).toEqual([...Array.from({ length: 16 }, (_, i) => i), 14, 15]);
      expect(card.slice(18).every((n) => n === 16)).toBe(true);
      for (const field of ['expiration-date', 'security-code']) {
        const last = mine.filter((e) => e.type === 'capture.progress' && e.data['field'] === field).at(-1);
        expect(last?.data, field).toMatchObject({ valid: true });
      }
      expect(mine.map((e) => e.id)).toEqual([...mine.map((e) => e.id)].sort((a, b) => a - b));

      // what the agent heard, and the recording: no digit, by hushpay's detector and by multimon-ng
      const agentHeard = decodeWavToInt16(readWav(readFileSync(agentCall.recording!)))[0]!;
      const recordingPath = join(hushpay.dataDir, 'recordings', `${call.id}.wav`);
      const recording = decodeWavToInt16(readWav(readFileSync(recordingPath)));
      expect((await detectFile(agentCall.recording!)).digits).toEqual([]);
      expect((await detectFile(recordingPath)).digits).toEqual([]);
      expect(await decodeMultimon(agentHeard)).toEqual([]);
      for (const channel of recording) expect(await decodeMultimon(channel)).toEqual([]);
      // the caller did talk, and the agent heard it: the masking took digits, not the call
      const rms = (s: Int16Array): number => Math.sqrt(s.reduce((a, v) => a + v * v, 0) / s.length);
      expect(rms(agentHeard.subarray(0, 8000 * 4))).toBeGreaterThan(200);

      // the webhooks arrived, signed; and hushpay's log went to a file like any deployment's
      await hushpay.close();
      const hooks = receiver.received;
      const tenantHooks = hooks.filter((h) => h.path === '/tenant').map((h) => JSON.parse(h.body).type);
      expect(tenantHooks).toEqual(expect.arrayContaining(['call.started', 'payment.started', 'payment.completed', 'call.ended']));
      expect(tenantHooks).not.toContain('capture.progress');
      // the payment's status callback got every event of the payment, progress included (each
      // carries its event id: deliveries run side by side, so a receiver orders by it)
      const callbacks = hooks
        .filter((h) => h.path === `/status?order=${dtmf}`)
        .map((h) => JSON.parse(h.body) as { type: string; data: { id: number } })
        .sort((a, b) => a.data.id - b.data.id);
      expect(callbacks.map((c) => [c.data.id, c.type])).toEqual(mine.map((e) => [e.id, e.type]));
      for (const h of hooks) expect(() => verify(h.headers, h.body, [SECRET], Date.now())).not.toThrow();
      const logFile = join(hushpay.dataDir, 'hushpay.log');
      writeFileSync(logFile, hushpay.logLines.join('\n'));

      // nothing anywhere holds the card: every file hushpay wrote, every event, answer and webhook
      const forms = cardForms();
      const written = filesUnder(hushpay.dataDir);
      expect(written).toEqual(expect.arrayContaining([join(hushpay.dataDir, 'hushpay.db'), recordingPath, logFile]));
      for (const file of written) {
        const bytes = readFileSync(file);
        for (const f of forms) expect(bytes.includes(f.bytes), `${file}: ${f.name}`).toBe(false);
      }
      const said = [...desk.received, ...stream.raw, ...hooks.map((h) => h.body), readFileSync(logFile, 'utf8')];
      for (const text of said) {
        for (const f of forms) expect(Buffer.from(text, 'utf8').includes(f.bytes), f.name).toBe(false);
        expect(CODE_AS_VALUE.test(text), `security code in: ${text.slice(0, 200)}`).toBe(false);
        expect(EXPIRY_AS_VALUE.test(text), `expiry in: ${text.slice(0, 200)}`).toBe(false);
      }
      // the database's text: no value is the security code or the expiry
      for (const file of filesUnder(hushpay.dataDir).filter((f) => /hushpay\.db/.test(f))) {
        const text = readFileSync(file).toString('latin1');
        expect(CODE_AS_VALUE.test(text), `${file}: security code`).toBe(false);
        expect(EXPIRY_AS_VALUE.test(text), `${file}: expiry`).toBe(false);
      }
    },
    60_000,
  );
});
