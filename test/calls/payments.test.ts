/**
 * A payment on a live call through hushpay, over loopback UDP: a sip-sim caller keys a card
 * number, expiry and code; hushpay captures it with the sandbox gateway; the caller hears the
 * prompts, the agent and the recording hear neither the prompts nor a digit.
 */

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call } from '../../src/calls/call.ts';
import { decodeWavToInt16, readWav } from '../../src/media/wav.ts';
import type { PaymentEvent } from '../../src/payments/session.ts';
import { type DtmfMethod, SimAgent, SimCaller } from '../../sip-sim/index.ts';
import { type TestHushpay, startTestHushpay } from '../support/hushpay.ts';
import { decodeMultimon } from '../support/referees.ts';

const CARD = '4242424242424242';
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const channels = (path: string): Int16Array[] => decodeWavToInt16(readWav(readFileSync(path)));

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

async function setup(): Promise<{ hushpay: TestHushpay; agent: SimAgent; caller: SimCaller; events: PaymentEvent[]; calls: Call[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pay-'));
  const agent = await SimAgent.listen({ record: (n) => join(dir, `agent-${n}.wav`) });
  cleanup.push(() => agent.close());
  const hushpay = await startTestHushpay({
    pbx: agent.uri('agents'),
    raw: { tenants: [{ id: 'shop', pbx: agent.uri('agents'), numbers: ['*'], payments: { language: 'en', autoSubmit: true } }] },
  });
  cleanup.push(() => hushpay.close());
  const caller = await SimCaller.start();
  cleanup.push(() => caller.close());
  const events: PaymentEvent[] = [];
  const calls: Call[] = [];
  hushpay.b2bua.on('call', (call) => {
    calls.push(call);
    call.on('payment', (e) => events.push(e));
    // the agent starts a payment as soon as the call is up (the API does this in production)
    call.on('active', () => call.payments!.start({ paymentId: 'pay_live', idempotencyKey: 'k-live', operation: 'sale', amount: { value: 12_000, currency: 'JPY' } }));
  });
  return { hushpay, agent, caller, events, calls };
}

describe('a payment on a live call', () => {
  it.each<DtmfMethod>(['rfc4733', 'inband'])('keyed %s: approved by the sandbox; the caller heard the prompts, the agent and the recording no prompt and no digit', async (dtmf) => {
    const { hushpay, agent, caller, events } = await setup();
    const heardByCaller = join(mkdtempSync(join(tmpdir(), 'caller-')), 'heard.wav');
    // the caller listens to the first prompt, then keys everything (expiry 12/30, code 123)
    const summary = await caller.placeCall({ to: `sip:100@127.0.0.1:${hushpay.sipPort}`, digits: `${CARD}1230123`, dtmf, afterMs: 3_000, toneMs: 80, gapMs: 80, hangupAfterMs: 10_000, record: heardByCaller });
    const agentCall = await (await agent.nextCall()).ended;
    expect(summary.status).toBe(200);

    const completed = events.find((e) => e.type === 'payment.completed');
    expect(completed).toMatchObject({ paymentId: 'pay_live', result: { status: 'approved', last4: '4242', brand: 'visa', amount: 12_000 } });
    const progress = events.filter((e) => e.type === 'capture.progress');
    expect(progress.length).toBeGreaterThanOrEqual(23);

    // the caller heard the prompts: speech in the first second, where the agent said nothing
    const callerHeard = channels(heardByCaller)[0]!;
    expect(rms(callerHeard.subarray(0, 8000))).toBeGreaterThan(300);
    // the agent did not: nothing but the flat beeps where keys were pressed, and no digit
    const agentHeard = channels(agentCall.recording!)[0]!;
    expect(rms(agentHeard.subarray(0, 8000 * 2))).toBeLessThan(50);
    expect(await decodeMultimon(agentHeard)).toEqual([]);
    // the recording: the agent channel holds no prompt, the caller channel no digit
    const [left, right] = channels(join(hushpay.dataDir, 'recordings', `${completed!.callId}.wav`));
    expect(rms(right!.subarray(0, 8000))).toBeLessThan(50);
    expect(await decodeMultimon(left!)).toEqual([]);
    // nothing hushpay logged or emitted holds the card
    const text = JSON.stringify(events) + hushpay.logLines.join('\n');
    for (const secret of [CARD, '42424242', '1230', '"123"']) expect(text.includes(secret), secret).toBe(false);
  }, 30_000);
});
