/**
 * The call session: pass-through, secure capture, result and back, under both mask policies —
 * scripted with the real capture inside, then every path through the session replayed.
 */

import { getShortestPaths } from '@xstate/graph';
import { type AnyEventObject, createActor, fromPromise, SimulatedClock, type SnapshotFrom } from 'xstate';
import { describe, expect, it } from 'vitest';
import { type CaptureInput, type CaptureOutput, captureMachine } from '../../flows/capture.machine.ts';
import { type MaskPolicy, type SessionEmitted, type SessionEvent, maskingOn, sessionMachine } from '../../flows/session.machine.ts';
import type { GatewayResult } from '../../src/payments/gateway.ts';

const captureInput = (paymentId: string): CaptureInput => ({
  paymentId,
  fields: ['payment-card-number'],
  acceptedBrands: ['visa'],
  amount: { value: 500, currency: 'JPY' },
  confirmAmount: false,
  methodChooser: 'none',
  allowedMethods: ['lump'],
  installmentCounts: [],
  maxAttempts: 2,
  delays: { firstDigitMs: 10_000, betweenDigitsMs: 5_000, wholeFieldMs: 60_000 },
  todayMs: Date.UTC(2026, 10, 21),
  autoSubmit: true,
});

const approved: GatewayResult = { gateway: 'sandbox', operation: 'sale', status: 'approved', resultCode: 'OK', detailCode: 'approved', message: 'Approved.', transactionId: 'p', requestedAt: '', respondedAt: '' };

function live(policy: MaskPolicy) {
  const clock = new SimulatedClock();
  const machine = sessionMachine.provide({ actors: { capture: captureMachine.provide({ actors: { authorize: fromPromise(async () => approved) } }) } });
  const actor = createActor(machine, { input: { callId: 'hp_1', policy, resultHoldMs: 4_000 }, clock });
  const emitted: SessionEmitted[] = [];
  actor.on('*', (e) => emitted.push(e));
  actor.start();
  return { actor, clock, emitted, masking: () => maskingOn(actor.getSnapshot()) };
}

const flush = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe('call session, scripted', () => {
  it('secure: unmasked outside a payment, masked from its start until its result has been told', async () => {
    const s = live('secure');
    expect(s.masking()).toBe(false);
    s.actor.send({ type: 'START_PAYMENT', input: captureInput('p1') });
    expect([s.actor.getSnapshot().value, s.masking()]).toEqual(['capturing', true]);
    for (const key of '4242424242424242') s.actor.send({ type: 'KEY', key: key as '4' });
    await flush();
    expect([s.actor.getSnapshot().value, s.masking()]).toEqual(['result', true]);
    expect(s.emitted.at(-1)).toMatchObject({ type: 'payment.ended', output: { status: 'approved', paymentId: 'p1' } });
    s.clock.increment(4_000);
    expect([s.actor.getSnapshot().value, s.masking()]).toEqual(['passThrough', false]);
  });

  it('always: masked in every state', () => {
    const s = live('always');
    expect(s.masking()).toBe(true);
    s.actor.send({ type: 'START_PAYMENT', input: captureInput('p1') });
    expect(s.masking()).toBe(true);
    s.actor.send({ type: 'CANCEL' });
    expect(s.actor.getSnapshot().value).toBe('result');
    expect(s.masking()).toBe(true);
    s.clock.increment(4_000);
    expect([s.actor.getSnapshot().value, s.masking()]).toEqual(['passThrough', true]);
  });

  it('refuses a second payment while one runs, and the call’s end stops the capture and its timers', () => {
    const s = live('secure');
    s.actor.send({ type: 'START_PAYMENT', input: captureInput('p1') });
    s.actor.send({ type: 'START_PAYMENT', input: captureInput('p2') });
    expect(s.emitted.map((e) => e.type)).toEqual(['payment.started', 'payment.refused']);
    expect(s.emitted[1]).toMatchObject({ paymentId: 'p2', reason: 'payment-in-progress' });
    const child = s.actor.getSnapshot().children['capture'];
    expect(child?.getSnapshot().status).toBe('active');
    s.actor.send({ type: 'CALL_ENDED' });
    expect(s.actor.getSnapshot().status).toBe('done');
    expect(child?.getSnapshot().status).toBe('stopped');
    s.clock.increment(120_000); // no capture timer fires after the call
    expect(s.emitted).toHaveLength(2);
  });
});

type Snap = SnapshotFrom<typeof sessionMachine>;

describe('call session, every path', () => {
  const outputs: CaptureOutput[] = [
    { paymentId: 'p', status: 'approved', result: approved },
    { paymentId: 'p', status: 'declined', result: { ...approved, status: 'declined', reason: 'insufficient-funds' } },
    { paymentId: 'p', status: 'cancelled' },
    { paymentId: 'p', status: 'failed', failure: 'too-many-failed-attempts', error: 'timeout' },
  ];

  for (const policy of ['always', 'secure'] as const) {
    it(`${policy}: every simple path replays, with masking as the policy says at every step`, async () => {
      const events = (s: Snap): AnyEventObject[] => {
        if (s.status !== 'active') return [];
        const e: AnyEventObject[] = [{ type: 'START_PAYMENT', input: captureInput('p') }, { type: 'CALL_ENDED' }];
        if (s.value === 'capturing') for (const output of outputs) e.push({ type: 'xstate.done.actor.capture', output });
        if (s.value === 'result') e.push({ type: 'xstate.after.resultHold.session.result' });
        return e;
      };
      const serialize = (s: Snap): string => JSON.stringify([s.value, s.status, s.context.last?.status]);
      const paths = getShortestPaths(sessionMachine, { input: { callId: 'hp_1', policy, resultHoldMs: 4_000 }, events: events as unknown as (s: Snap) => SessionEvent[], serializeState: (s) => serialize(s as Snap) });
      expect(paths.length).toBeGreaterThanOrEqual(8);
      for (const path of paths) {
        // the capture stands in as a promise the test settles with the path's output
        let settle: ((o: CaptureOutput) => void) | undefined;
        const machine = sessionMachine.provide({ actors: { capture: fromPromise<CaptureOutput>(() => new Promise((r) => (settle = r))) as never } });
        const clock = new SimulatedClock();
        const actor = createActor(machine, { input: { callId: 'hp_1', policy, resultHoldMs: 4_000 }, clock }).start();
        for (const step of path.steps) {
          const e = step.event as AnyEventObject;
          if (e.type === 'xstate.init') continue;
          if (e.type === 'xstate.done.actor.capture') {
            settle!((e as unknown as { output: CaptureOutput }).output);
            await flush();
          } else if (e.type.startsWith('xstate.after.resultHold')) clock.increment(4_000);
          else actor.send(e as SessionEvent);
          const snap = actor.getSnapshot();
          expect(serialize(snap)).toBe(serialize(step.state as Snap));
          const expectMasked = policy === 'always' || snap.value === 'capturing' || snap.value === 'result';
          if (snap.status === 'active') expect(maskingOn(snap)).toBe(expectMasked);
        }
        actor.stop();
      }
    });
  }
});
