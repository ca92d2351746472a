/**
 * The card capture flow: scripted calls first, then every path — the shortest path to every
 * state the flow can reach from the caller's keys, the agent's commands, the delays and the
 * gateway's answers (@xstate/graph) — replayed on a live actor with a simulated clock, where
 * each step must land where the model says and nothing the flow emits may hold a card digit.
 */

import { getShortestPaths } from '@xstate/graph';
import { type AnyEventObject, createActor, fromPromise, SimulatedClock, type SnapshotFrom } from 'xstate';
import { describe, expect, it } from 'vitest';
import { type CaptureContext, type CaptureEmitted, type CaptureEvent, type CaptureInput, type CaptureKey, type CaptureStep, captureMachine } from '../../flows/capture.machine.ts';
import type { CardDigits } from '../../src/payments/digits.ts';
import type { GatewayResult } from '../../src/payments/gateway.ts';

const TODAY = Date.UTC(2026, 10, 21);

function input(overrides: Partial<CaptureInput> = {}): CaptureInput {
  return {
    paymentId: 'pay_1',
    fields: ['payment-card-number', 'expiration-date', 'security-code'],
    acceptedBrands: ['visa', 'mastercard', 'amex', 'jcb'],
    amount: { value: 12_000, currency: 'JPY' },
    confirmAmount: false,
    methodChooser: 'none',
    allowedMethods: ['lump', 'installments', 'bonus-lump', 'revolving'],
    installmentCounts: [3, 5, 6, 10, 12],
    maxAttempts: 3,
    delays: { firstDigitMs: 10_000, betweenDigitsMs: 5_000, wholeFieldMs: 60_000 },
    todayMs: TODAY,
    autoSubmit: false,
    ...overrides,
  };
}

function result(status: GatewayResult['status']): GatewayResult {
  return { gateway: 'sandbox', operation: 'sale', status, ...(status === 'approved' ? {} : { reason: status === 'declined' ? 'insufficient-funds' : 'processing-error' }), resultCode: 'OK', detailCode: status, message: status, transactionId: 'pay_1', requestedAt: '', respondedAt: '' };
}

/** A live capture with a simulated clock, a gateway the test answers, and everything it emitted. */
function live(options: Partial<CaptureInput> = {}) {
  const clock = new SimulatedClock();
  let pending: { resolve: (r: GatewayResult) => void; reject: (e: Error) => void } | undefined;
  const seen: { pan?: CardDigits; code?: CardDigits } = {};
  const machine = captureMachine.provide({
    actors: {
      authorize: fromPromise<GatewayResult, { context: CaptureContext }>(({ input }) => {
        seen.pan = input.context.pan;
        seen.code = input.context.securityCode;
        return new Promise((resolve, reject) => (pending = { resolve, reject }));
      }),
    },
  });
  const actor = createActor(machine, { input: input(options), clock });
  const emitted: CaptureEmitted[] = [];
  actor.on('*', (e) => emitted.push(e));
  actor.start();
  return {
    actor,
    clock,
    emitted,
    seen,
    keys: (keys: string) => {
      for (const key of keys) actor.send({ type: 'KEY', key: key as CaptureKey });
    },
    answer: async (r: GatewayResult | Error) => {
      const p = pending!;
      pending = undefined;
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
      await new Promise((done) => setTimeout(done, 0));
    },
    prompts: () => emitted.filter((e) => e.type === 'prompt').map((e) => (e as { prompt: string }).prompt),
    errors: () => emitted.filter((e) => e.type === 'capture.error').map((e) => (e as { error: string }).error),
  };
}

describe('card capture, scripted', () => {
  it('takes card number, expiry and code, waits for the agent, and ends with the gateway’s approval', async () => {
    const c = live();
    c.keys('4242424242424242');
    c.keys('1230');
    c.keys('123');
    expect(c.actor.getSnapshot().value).toBe('ready');
    c.actor.send({ type: 'SUBMIT' });
    expect(c.actor.getSnapshot().value).toBe('authorizing');
    expect([c.seen.pan?.length, c.seen.code?.length]).toEqual([16, 3]);
    await c.answer(result('approved'));
    expect(c.actor.getSnapshot().output).toMatchObject({ status: 'approved', paymentId: 'pay_1' });
    expect(c.prompts()).toEqual(['enter-card-number', 'enter-expiry', 'enter-security-code', 'processing']);
    const done = c.emitted.filter((e) => e.type === 'capture.progress' && e.valid);
    expect(done.map((e) => (e as { field: string }).field)).toEqual(['payment-card-number', 'expiration-date', 'security-code']);
    expect(done[0]).toMatchObject({ brand: 'visa', masked: '•••• •••• •••• 4242', entered: 16, expected: 16 });
  });

  it('* takes back the last digit, and on an empty field starts it again from its prompt', () => {
    const c = live();
    c.keys('4242424242424243');
    expect(c.actor.getSnapshot().context.pan.length).toBe(16); // a Luhn mistake leaves the field open
    c.keys('*2');
    expect(c.actor.getSnapshot().context.step).toBe('expiration-date');
    c.keys('1*');
    expect(c.actor.getSnapshot().context.expiry.length).toBe(0);
    c.keys('*');
    expect(c.prompts()).toEqual(['enter-card-number', 'enter-expiry', 'field-restarted', 'enter-expiry']);
    expect(c.errors()).toEqual([]);
  });

  it('# ends a field early: a short card number is an error, and the caller gets another attempt', () => {
    const c = live();
    c.keys('424242#');
    expect(c.errors()).toEqual(['invalid-card-number']);
    expect(c.prompts()).toEqual(['enter-card-number', 'error-invalid-card-number', 'enter-card-number']);
    expect(c.actor.getSnapshot().context.pan.length).toBe(0);
    c.keys('378282246310005'); // Amex: 15 digits, 4-digit code
    c.keys('1230');
    expect(c.prompts().at(-1)).toBe('enter-security-code-amex');
    c.keys('123#');
    expect(c.errors().at(-1)).toBe('invalid-security-code');
    c.keys('1234');
    expect(c.actor.getSnapshot().value).toBe('ready');
  });

  it('refuses brands the tenant does not take, past dates, and fails after the last attempt', () => {
    const c = live({ acceptedBrands: ['visa'], maxAttempts: 2 });
    c.keys('5555555555554444');
    expect(c.errors()).toEqual(['invalid-card-type']);
    c.keys('4242424242424242');
    c.keys('1025');
    c.keys('1326');
    expect(c.errors()).toEqual(['invalid-card-type', 'invalid-date', 'invalid-date']);
    expect(c.actor.getSnapshot().status).toBe('done');
    expect(c.actor.getSnapshot().output).toEqual({ paymentId: 'pay_1', status: 'failed', failure: 'too-many-failed-attempts', error: 'invalid-date' });
  });

  it('times out on the injected clock: first digit, between digits, and the whole field', () => {
    const c = live({ maxAttempts: 5 });
    c.clock.increment(9_999);
    expect(c.errors()).toEqual([]);
    c.clock.increment(1);
    expect(c.errors()).toEqual(['timeout']);
    c.keys('4242');
    c.clock.increment(5_000);
    expect(c.errors()).toEqual(['timeout', 'timeout']);
    // keying steadily, 4 s apart, never pauses long enough between digits: the field's own limit ends it
    for (let i = 0; i < 15; i++) {
      c.keys('4');
      c.clock.increment(4_000);
    }
    expect(c.errors()).toEqual(['timeout', 'timeout', 'timeout']);
    expect(c.actor.getSnapshot().context.attempts['payment-card-number']).toBe(3);
  });

  it('lets the agent re-capture any field, and asks a new security code when the brand’s length changes', () => {
    const c = live();
    c.keys('4242424242424242' + '1230' + '123');
    c.actor.send({ type: 'RECAPTURE', field: 'expiration-date' });
    expect(c.actor.getSnapshot().context.step).toBe('expiration-date');
    c.keys('0131');
    expect(c.actor.getSnapshot().value).toBe('ready');
    c.actor.send({ type: 'RECAPTURE', field: 'payment-card-number' });
    c.keys('378282246310005');
    expect(c.actor.getSnapshot().context.step).toBe('security-code'); // Amex wants 4 digits now
    c.keys('1234');
    expect(c.actor.getSnapshot().value).toBe('ready');
  });

  it('Japan: the caller chooses 分割 and its count, confirms the amount, and the gateway is asked at once', async () => {
    const c = live({ methodChooser: 'caller', confirmAmount: true, autoSubmit: true });
    c.keys('3530111333300000' + '1230' + '123');
    c.keys('9'); // not a choice
    c.keys('2');
    c.keys('7#'); // not an allowed count
    c.keys('12');
    expect(c.prompts().slice(-3)).toEqual(['error-invalid-installments', 'enter-installments', 'confirm-amount']);
    expect(c.emitted.find((e) => e.type === 'prompt' && e.prompt === 'confirm-amount')).toMatchObject({ amount: { value: 12_000, currency: 'JPY' } });
    c.keys('1');
    expect(c.actor.getSnapshot().value).toBe('authorizing');
    expect(c.actor.getSnapshot().context.chosenMethod).toEqual({ kind: 'installments', count: 12 });
    expect(c.errors()).toEqual(['invalid-selection', 'invalid-installments']);
    await c.answer(result('declined'));
    expect(c.actor.getSnapshot().output).toMatchObject({ status: 'declined' });
  });

  it('ends when the caller refuses the amount, and when the agent cancels', () => {
    const refused = live({ confirmAmount: true });
    refused.keys('4242424242424242' + '1230' + '123' + '2');
    expect(refused.actor.getSnapshot().output).toMatchObject({ status: 'failed', failure: 'amount-not-confirmed' });
    const cancelled = live();
    cancelled.keys('4242');
    cancelled.actor.send({ type: 'CANCEL' });
    expect(cancelled.actor.getSnapshot().output).toEqual({ paymentId: 'pay_1', status: 'cancelled' });
  });

  it('a gateway call that throws ends in payment-connector-error; a cancel while it runs is not taken', async () => {
    const c = live({ autoSubmit: true, fields: ['payment-card-number'] });
    c.keys('4242424242424242');
    c.actor.send({ type: 'CANCEL' });
    expect(c.actor.getSnapshot().value).toBe('authorizing');
    await c.answer(new Error('socket hang up'));
    expect(c.actor.getSnapshot().output).toMatchObject({ status: 'failed', failure: 'payment-connector-error' });
  });
});

// -------------------------------------------------------------------------------------------
// every path
// -------------------------------------------------------------------------------------------

type Snap = SnapshotFrom<typeof captureMachine>;

const SCRIPT: Record<CaptureStep, string> = {
  'payment-card-number': '4242424242424242',
  'expiration-date': '1230',
  'security-code': '123',
  'payment-method': '2',
  installments: '12',
  'amount-confirmation': '1',
};

function bufferDigits(context: Snap['context']): number[] {
  const b = context.step === 'payment-card-number' ? context.pan : context.step === 'expiration-date' ? context.expiry : context.step === 'security-code' ? context.securityCode : undefined;
  return b ? Array.from({ length: b.length }, (_, i) => b.at(i)) : [...context.entry];
}

/**
 * A snapshot with the digits abstracted to how many and whether they follow the script, and the
 * attempts of the current step only (a field's spent attempts reset when the agent asks it again).
 */
function serialize(s: Snap): string {
  const c = s.context;
  const shape = (d: CardDigits, script: string): string => `${d.length}${Array.from({ length: d.length }, (_, i) => d.at(i)).join('') === script.slice(0, d.length) ? '' : 'x'}`;
  return JSON.stringify([s.value, s.status, c.step, shape(c.pan, SCRIPT['payment-card-number']), shape(c.expiry, SCRIPT['expiration-date']), shape(c.securityCode, SCRIPT['security-code']), c.entry, c.done, c.attempts[c.step] ?? 0, c.chosenMethod, c.outcome, c.result?.status, c.failure]);
}

const DONE = (status: GatewayResult['status']): AnyEventObject => ({ type: 'xstate.done.actor.authorize', output: result(status) });

/** The events worth trying from a snapshot: the script's next key, a wrong one, *, #, the delays that would fire first, and the agent's commands. */
function eventsFrom(timeouts: 'digits' | 'field') {
  return (s: Snap): AnyEventObject[] => {
    if (s.status !== 'active') return [];
    const c = s.context;
    const events: AnyEventObject[] = [{ type: 'CANCEL' }];
    const state = JSON.stringify(s.value);
    if (state.includes('step')) {
      const typed = bufferDigits(c);
      const right = Number(SCRIPT[c.step][typed.length] ?? '0');
      const key = (k: string): CaptureEvent => ({ type: 'KEY', key: k as CaptureKey });
      events.push(key(String(right)), key('*'), key('#'));
      // one wrong key per try is enough to reach every mistake the rules can see
      if (typed.join('') === SCRIPT[c.step].slice(0, typed.length)) events.push(key(String((right + 1) % 10)));
      if (timeouts === 'field') events.push({ type: 'xstate.after.wholeField.capture.step' });
      else if (state.includes('awaitingFirst')) events.push({ type: 'xstate.after.firstDigit.capture.step.awaitingFirst' });
      else events.push({ type: 'xstate.after.betweenDigits.capture.step.entering' });
    }
    if (state.includes('step') || state === '"ready"') for (const field of c.fields) events.push({ type: 'RECAPTURE', field });
    if (state === '"ready"') events.push({ type: 'SUBMIT' });
    if (state === '"authorizing"') events.push(DONE('approved'), DONE('declined'), DONE('error'), { type: 'xstate.error.actor.authorize', error: new Error('down') });
    return events;
  };
}

/** Replays a generated path on a live actor: keys and commands sent, delays by the clock, the gateway answered. */
async function replay(options: Partial<CaptureInput>, steps: readonly { event: AnyEventObject; state: Snap }[]): Promise<{ emitted: CaptureEmitted[] }> {
  const c = live(options);
  const delays = input(options).delays;
  for (const [i, step] of steps.entries()) {
    const e = step.event;
    if (e.type === 'xstate.init') continue;
    if (e.type === 'xstate.after.firstDigit.capture.step.awaitingFirst') c.clock.increment(delays.firstDigitMs);
    else if (e.type === 'xstate.after.betweenDigits.capture.step.entering') c.clock.increment(delays.betweenDigitsMs);
    else if (e.type === 'xstate.after.wholeField.capture.step') c.clock.increment(delays.wholeFieldMs);
    else if (e.type === 'xstate.done.actor.authorize') await c.answer((e as unknown as { output: GatewayResult }).output);
    else if (e.type === 'xstate.error.actor.authorize') await c.answer(new Error('down'));
    else c.actor.send(e as CaptureEvent);
    expect(serialize(c.actor.getSnapshot()), `step ${i}: ${JSON.stringify(e)}`).toBe(serialize(step.state));
  }
  return { emitted: c.emitted };
}

describe('card capture, every path', () => {
  const configurations: [string, Partial<CaptureInput>, 'digits' | 'field'][] = [
    ['card number, expiry, code; the agent submits', { maxAttempts: 2 }, 'digits'],
    ['the same with the field timer shortest', { maxAttempts: 2, delays: { firstDigitMs: 10_000, betweenDigitsMs: 5_000, wholeFieldMs: 3_000 } }, 'field'],
    ['Japan: method and instalments keyed, amount confirmed, submitted at once', { maxAttempts: 2, fields: ['payment-card-number', 'security-code'], methodChooser: 'caller', confirmAmount: true, autoSubmit: true }, 'digits'],
  ];

  for (const [name, options, timeouts] of configurations) {
    it(`${name}: the shortest path to every reachable state replays on a live actor`, async () => {
      const paths = getShortestPaths(captureMachine, { input: input(options), events: eventsFrom(timeouts) as unknown as (s: Snap) => CaptureEvent[], serializeState: (s) => serialize(s as Snap) });
      expect(paths.length).toBeGreaterThan(100);
      const finals = new Set<string>();
      for (const path of paths) {
        const { emitted } = await replay(options, path.steps as unknown as { event: AnyEventObject; state: Snap }[]);
        const text = JSON.stringify(emitted);
        // nothing emitted holds card digits: no run longer than the last four, not the expiry, not the code
        expect(text.match(/\d{7,}|1230|"123"/), text).toBeNull();
        for (const e of emitted) if (e.type === 'capture.progress') expect(e.entered).toBeLessThanOrEqual(19);
        const out = path.state.output as { status: string; failure?: string } | undefined;
        if (path.state.status === 'done') finals.add(`${out?.status}${out?.failure ? `:${out.failure}` : ''}`);
      }
      const expected = ['approved', 'declined', 'error', 'cancelled', 'failed:too-many-failed-attempts', 'failed:payment-connector-error'];
      if (options.confirmAmount) expected.push('failed:amount-not-confirmed');
      expect([...finals].sort()).toEqual(expected.sort());
    }, 120_000);
  }
});
