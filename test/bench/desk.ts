/**
 * Keypress to `capture.progress` on a connected WebSocket: sip-sim callers key a card (16
 * digits, expiry, code) into payments started through the API while an agent's event stream
 * is open, and each key's latency is the time from the moment the caller sent the last 20 ms of
 * the key's tone (or its RFC 4733 event) to the moment its progress event arrived on the socket.
 *
 * The caller reports each key as it starts (`digit-sent`, emitted in the pacer tick that sends
 * the key's first frame); the key's last frame leaves (toneMs − 20) ms later on the same paced
 * clock. Both ends are read from one `performance.now()` in this process.
 */

import { SimCaller } from '../../sip-sim/index.ts';
import type { DigitSentRecord } from '../../sip-sim/records.ts';
import type { Call } from '../../src/calls/call.ts';
import { Client, startDeskWorld } from '../desktop/support.ts';

const TONE_MS = 80;
const GAP_MS = 80;
const PTIME_MS = 20;
const KEYS = '4111111111111111' + '1230' + '123';

export interface DeskLatency {
  readonly dtmf: 'rfc4733' | 'inband';
  readonly calls: number;
  readonly keys: number;
  /** Keys whose progress event arrived. */
  readonly matched: number;
  readonly latenciesMs: readonly number[];
}

export async function keypressToProgress(dtmf: 'rfc4733' | 'inband', calls: number): Promise<DeskLatency> {
  const world = await startDeskWorld();
  const callers: SimCaller[] = [];
  try {
    const aiko = await Client.login(world.base, 'aiko');
    const stream = await aiko.events();
    // per hushpay call: the wall times its keys' last frames left the caller
    const keyEnds = new Map<string, number[]>();
    const sipToCall = new Map<string, string>();
    const ready: Promise<void>[] = [];
    world.hushpay.b2bua.on('call', (call: Call) => {
      keyEnds.set(call.id, []);
      sipToCall.set(call.sipCallId, call.id);
      ready.push(
        new Promise<void>((resolve, reject) => {
          call.on('active', () => {
            void (async () => {
              await aiko.post(`/v1/calls/${call.id}/claim`);
              const r = await aiko.post(`/v1/calls/${call.id}/payments`, { idempotencyKey: call.id, amount: 1000, currency: 'JPY' });
              if (r.status !== 201) reject(new Error(`payment not started: ${r.status} ${r.text}`));
              else resolve();
            })().catch(reject);
          });
        }),
      );
    });
    const placed: Promise<unknown>[] = [];
    for (let i = 0; i < calls; i++) {
      const caller = await SimCaller.start();
      callers.push(caller);
      caller.on('digit-sent', (r: DigitSentRecord) => {
        const at = performance.now() + TONE_MS - PTIME_MS;
        const id = sipToCall.get(r.callId);
        if (id) keyEnds.get(id)!.push(at);
      });
      placed.push(caller.placeCall({ to: `sip:100@127.0.0.1:${world.hushpay.sipPort}`, digits: KEYS, dtmf, afterMs: 1_500, toneMs: TONE_MS, gapMs: GAP_MS, hangupAfterMs: 1_500 + KEYS.length * (TONE_MS + GAP_MS) + 1_500 }));
    }
    await Promise.all(placed);
    await Promise.all(ready);
    const latencies: number[] = [];
    let keys = 0;
    for (const [callId, ends] of keyEnds) {
      keys += ends.length;
      // a key's event is the first to show its count in its field (a field opens at 0 and
      // closes with its count again, valid or not)
      const seen = new Set<string>();
      const progress = stream.events.filter((e) => {
        if (e.type !== 'capture.progress' || e.callId !== callId || (e.data['entered'] as number) === 0) return false;
        const key = `${String(e.data['field'])}:${String(e.data['entered'])}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      progress.forEach((e, i) => {
        const end = ends[i];
        const arrived = stream.arrivedAt.get(e.id);
        if (end !== undefined && arrived !== undefined) latencies.push(arrived - end);
      });
    }
    await stream.close();
    return { dtmf, calls, keys, matched: latencies.length, latenciesMs: latencies };
  } finally {
    for (const c of callers) await c.close();
    await world.close();
  }
}
