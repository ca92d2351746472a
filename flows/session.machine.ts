/**
 * The call session: pass-through → secure capture → (authorizing, inside the capture) → result →
 * pass-through, for as long as the call lasts, under the tenant's mask policy:
 *
 * - `always` (the default): every digit of the call is masked, in and out of a payment.
 * - `secure`: masked from the moment a payment starts until its result has been told; outside
 *   a payment the caller's digits go to the PBX, so its own menus keep working.
 *
 * The capture runs as a child actor (`capture`), which gets the caller's keys and the agent's
 * commands while it runs. No I/O: the runtime (src/payments/session.ts) reads `maskingOn`
 * from each snapshot and sets the media path to match.
 */

import { assign, emit, sendTo, setup } from 'xstate';
import { type CaptureEvent, type CaptureInput, type CaptureOutput, captureMachine } from './capture.machine.ts';

export type MaskPolicy = 'always' | 'secure';

export interface SessionInput {
  readonly callId: string;
  readonly policy: MaskPolicy;
  /** How long the result is told before the call goes back to pass-through. */
  readonly resultHoldMs: number;
}

export type SessionEvent = { type: 'START_PAYMENT'; input: CaptureInput } | { type: 'CALL_ENDED' } | CaptureEvent;

export type SessionEmitted =
  | { type: 'payment.started'; callId: string; paymentId: string }
  | { type: 'payment.refused'; callId: string; paymentId: string; reason: 'payment-in-progress' }
  | { type: 'payment.ended'; callId: string; output: CaptureOutput };

export interface SessionContext extends SessionInput {
  paymentId: string | undefined;
  captureInput: CaptureInput | undefined;
  last: CaptureOutput | undefined;
}

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
    emitted: {} as SessionEmitted,
  },
  actors: { capture: captureMachine },
  delays: { resultHold: ({ context }) => context.resultHoldMs },
  actions: {
    takePayment: assign(({ event }) => (event.type === 'START_PAYMENT' ? { paymentId: event.input.paymentId, captureInput: event.input } : {})),
    emitStarted: emit(({ context }) => ({ type: 'payment.started' as const, callId: context.callId, paymentId: context.paymentId! })),
    emitRefused: emit(({ context, event }) => ({ type: 'payment.refused' as const, callId: context.callId, paymentId: event.type === 'START_PAYMENT' ? event.input.paymentId : '', reason: 'payment-in-progress' as const })),
    keepOutput: assign(({ event }) => ({ last: (event as unknown as { output: CaptureOutput }).output })),
    emitEnded: emit(({ context }) => ({ type: 'payment.ended' as const, callId: context.callId, output: context.last! })),
    forward: sendTo('capture', ({ event }) => event as CaptureEvent),
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({ ...input, paymentId: undefined, captureInput: undefined, last: undefined }),
  initial: 'passThrough',
  on: { CALL_ENDED: '.ended' },
  states: {
    passThrough: {
      on: { START_PAYMENT: { target: 'capturing', actions: 'takePayment' } },
    },
    capturing: {
      entry: 'emitStarted',
      invoke: {
        id: 'capture',
        src: 'capture',
        input: ({ context }) => context.captureInput!,
        onDone: { target: 'result', actions: ['keepOutput', 'emitEnded'] },
      },
      on: {
        KEY: { actions: 'forward' },
        RECAPTURE: { actions: 'forward' },
        SET_METHOD: { actions: 'forward' },
        SUBMIT: { actions: 'forward' },
        CANCEL: { actions: 'forward' },
        START_PAYMENT: { actions: 'emitRefused' },
      },
    },
    result: {
      after: { resultHold: 'passThrough' },
      on: { START_PAYMENT: { target: 'capturing', actions: 'takePayment' } },
    },
    ended: { type: 'final' },
  },
});

/** Whether the caller's digits are masked in this snapshot of the session. */
export function maskingOn(snapshot: { context: SessionContext; value: unknown; status: string }): boolean {
  return snapshot.context.policy === 'always' || snapshot.value === 'capturing' || snapshot.value === 'result';
}
