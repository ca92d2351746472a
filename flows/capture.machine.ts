/**
 * The card capture: the caller keys the card number, expiry and security code (each tenant
 * chooses its fields), and, where the tenant asks, the payment method and instalments and a
 * confirmation of the amount; the agent can re-capture a field, cancel, and submit; then the
 * gateway is asked and the capture ends with its result.
 *
 * Keys: `*` deletes the last digit (on an empty field it restarts the field), `#` ends a field
 * early. A field is complete at its brand's length (card-rules.ts, `panComplete`) or on `#`.
 * A field that is wrong, or not keyed in time, is asked again, up to `maxAttempts` times.
 *
 * No I/O here: the runtime (src/payments/capture.ts) feeds keys and agent commands, supplies
 * the `authorize` actor, plays the prompts the machine emits, and wipes every CardDigits value
 * the machine replaces. Transitions are pure (every digit makes a new CardDigits), so the paths
 * through the machine are generated and replayed by test/flows/capture.test.ts.
 */

import { assign, emit, fromPromise, setup } from 'xstate';
import { type CaptureErrorType, type CardBrand, brandOf, brandRule, checkExpiry, checkPan, checkSecurityCode, maskedPan, panComplete, securityCodeLength } from '../src/payments/card.ts';
import { CardDigits } from '../src/payments/digits.ts';
import type { GatewayResult, PaymentMethod } from '../src/payments/gateway.ts';

export const CAPTURE_FIELDS = ['payment-card-number', 'expiration-date', 'security-code'] as const;
export type CaptureField = (typeof CAPTURE_FIELDS)[number];
/** Every step the caller keys: the card fields, then the payment method and the amount. */
export type CaptureStep = CaptureField | 'payment-method' | 'installments' | 'amount-confirmation';
export type MethodKind = PaymentMethod['kind'];

/** What went wrong with a step: Twilio's names for the card fields, two more for the rest. */
export type StepError = CaptureErrorType | 'invalid-selection' | 'invalid-installments';

export type CaptureFailure = 'too-many-failed-attempts' | 'amount-not-confirmed' | 'payment-connector-error';

export interface CaptureInput {
  readonly paymentId: string;
  /** The card fields, in the order asked; the card number is always one. */
  readonly fields: readonly CaptureField[];
  readonly acceptedBrands: readonly CardBrand[];
  /** In the currency's minor unit; absent for a card check or a card on file. */
  readonly amount?: { readonly value: number; readonly currency: string };
  /** Ask the caller to press 1 to confirm the amount. */
  readonly confirmAmount: boolean;
  /** Who chooses the payment method: the agent (in `method`), the caller (keyed), or nobody (一括). */
  readonly methodChooser: 'agent' | 'caller' | 'none';
  readonly method?: PaymentMethod;
  /** What the caller may choose, keyed 1–4 in this order of MethodKind: lump, installments, bonus-lump, revolving. */
  readonly allowedMethods: readonly MethodKind[];
  readonly installmentCounts: readonly number[];
  readonly maxAttempts: number;
  readonly delays: { readonly firstDigitMs: number; readonly betweenDigitsMs: number; readonly wholeFieldMs: number };
  /** Calendar time for the expiry check (the clock's wallMs at the start). */
  readonly todayMs: number;
  /** Submit as soon as every step is keyed, without waiting for the agent. */
  readonly autoSubmit: boolean;
}

export type CaptureKey = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '*' | '#';

export type CaptureEvent =
  | { type: 'KEY'; key: CaptureKey }
  | { type: 'RECAPTURE'; field: CaptureField }
  | { type: 'SET_METHOD'; method: PaymentMethod }
  | { type: 'SUBMIT' }
  | { type: 'CANCEL' };

/** Prompts the caller hears (the runtime plays them, on the caller's leg only). */
export type PromptId =
  | 'enter-card-number'
  | 'enter-expiry'
  | 'enter-security-code'
  | 'enter-security-code-amex'
  | 'choose-payment-method'
  | 'enter-installments'
  | 'confirm-amount'
  | 'field-restarted'
  | `error-${StepError}`
  | 'processing'
  | 'approved'
  | 'declined'
  | 'cancelled'
  | 'failed';

/** What the desktop may see: counts, brand, masked forms and ticks. Never a digit. */
export type CaptureEmitted =
  | { type: 'prompt'; prompt: PromptId; amount?: { value: number; currency: string } }
  | { type: 'capture.progress'; paymentId: string; field: CaptureStep; entered: number; expected: number; brand?: CardBrand; masked?: string; valid?: boolean }
  | { type: 'capture.error'; paymentId: string; field: CaptureStep; error: StepError; attempt: number; attemptsLeft: number }
  | { type: 'payment.ready'; paymentId: string }
  | { type: 'payment.authorizing'; paymentId: string };

export interface CaptureContext extends CaptureInput {
  step: CaptureStep;
  pan: CardDigits;
  expiry: CardDigits;
  securityCode: CardDigits;
  /** Keys of the payment-method and instalment steps (not card data). */
  entry: readonly number[];
  brand: CardBrand | undefined;
  chosenMethod: PaymentMethod | undefined;
  /** Steps keyed and valid. */
  done: readonly CaptureStep[];
  /** Failed attempts per step. */
  attempts: Readonly<Partial<Record<CaptureStep, number>>>;
  lastError: StepError | undefined;
  result: GatewayResult | undefined;
  failure: CaptureFailure | undefined;
  outcome: 'completed' | 'failed' | 'cancelled' | undefined;
}

export interface CaptureOutput {
  readonly paymentId: string;
  readonly status: 'approved' | 'declined' | 'error' | 'failed' | 'cancelled';
  readonly result?: GatewayResult;
  readonly failure?: CaptureFailure;
  readonly error?: StepError;
}

const METHOD_KEYS: readonly MethodKind[] = ['lump', 'installments', 'bonus-lump', 'revolving'];

/** The steps of a capture, in order: instalments follow a caller's choice of 分割. */
export function stepsOf(input: CaptureInput, chosen?: PaymentMethod): CaptureStep[] {
  const steps: CaptureStep[] = [...input.fields];
  if (input.methodChooser === 'caller') {
    steps.push('payment-method');
    if (chosen?.kind === 'installments') steps.push('installments');
  }
  if (input.confirmAmount && input.amount) steps.push('amount-confirmation');
  return steps;
}

function bufferOf(context: CaptureContext): CardDigits | readonly number[] {
  switch (context.step) {
    case 'payment-card-number':
      return context.pan;
    case 'expiration-date':
      return context.expiry;
    case 'security-code':
      return context.securityCode;
    default:
      return context.entry;
  }
}

function enteredOf(context: CaptureContext): number {
  return bufferOf(context).length;
}

/** How many keys a step wants: the brand's usual length, 4 for MMYY, the code's length. */
export function expectedOf(context: CaptureContext, step: CaptureStep = context.step): number {
  switch (step) {
    case 'payment-card-number': {
      const brand = brandOf(context.pan);
      return brand === undefined || brand === 'unknown' ? 16 : brandRule(brand).lengths[0]!;
    }
    case 'expiration-date':
      return 4;
    case 'security-code':
      return securityCodeLength(context.brand);
    case 'installments':
      return 2;
    default:
      return 1;
  }
}

/** Whether the step is complete with the keys so far (without `#`). */
function complete(context: CaptureContext): boolean {
  switch (context.step) {
    case 'payment-card-number':
      return panComplete(context.pan);
    case 'expiration-date':
      return context.expiry.length === 4;
    case 'security-code':
      return context.securityCode.length === securityCodeLength(context.brand);
    case 'installments':
      return context.entry.length === 2;
    default:
      return context.entry.length === 1;
  }
}

/** Checks the keyed step: undefined when it is valid. */
function stepError(context: CaptureContext): StepError | undefined {
  switch (context.step) {
    case 'payment-card-number': {
      const r = checkPan(context.pan, context.acceptedBrands);
      return r.ok ? undefined : r.error;
    }
    case 'expiration-date': {
      const mmyy = Array.from({ length: context.expiry.length }, (_, i) => context.expiry.at(i));
      const r = checkExpiry(mmyy, context.todayMs);
      return r.ok ? undefined : r.error;
    }
    case 'security-code': {
      const r = checkSecurityCode(context.securityCode, context.brand);
      return r.ok ? undefined : r.error;
    }
    case 'payment-method': {
      const kind = METHOD_KEYS[(context.entry[0] ?? 0) - 1];
      return kind && context.allowedMethods.includes(kind) ? undefined : 'invalid-selection';
    }
    case 'installments': {
      const count = context.entry.reduce((n, d) => n * 10 + d, 0);
      return context.installmentCounts.includes(count) ? undefined : 'invalid-installments';
    }
    case 'amount-confirmation':
      return context.entry[0] === 1 || context.entry[0] === 2 ? undefined : 'invalid-selection';
  }
}

function promptFor(context: CaptureContext, step: CaptureStep): PromptId {
  switch (step) {
    case 'payment-card-number':
      return 'enter-card-number';
    case 'expiration-date':
      return 'enter-expiry';
    case 'security-code':
      return context.brand === 'amex' ? 'enter-security-code-amex' : 'enter-security-code';
    case 'payment-method':
      return 'choose-payment-method';
    case 'installments':
      return 'enter-installments';
    case 'amount-confirmation':
      return 'confirm-amount';
  }
}

/** The first step not yet done, in the order of the capture; undefined when all are. */
function nextStep(context: CaptureContext): CaptureStep | undefined {
  return stepsOf(context, context.chosenMethod).find((step) => !context.done.includes(step));
}

/** The context with the current step's keys replaced. */
function withBuffer(context: CaptureContext, next: CardDigits | readonly number[]): Partial<CaptureContext> {
  switch (context.step) {
    case 'payment-card-number':
      return { pan: next as CardDigits, brand: undefined };
    case 'expiration-date':
      return { expiry: next as CardDigits };
    case 'security-code':
      return { securityCode: next as CardDigits };
    default:
      return { entry: next as readonly number[] };
  }
}

function progress(context: CaptureContext, valid?: boolean): CaptureEmitted {
  const brand = context.step === 'payment-card-number' ? brandOf(context.pan) : undefined;
  const known = brand !== undefined && brand !== 'unknown' ? brand : undefined;
  const masked = context.step === 'payment-card-number' && valid ? maskedPan(context.pan, true) : undefined;
  return {
    type: 'capture.progress',
    paymentId: context.paymentId,
    field: context.step,
    entered: enteredOf(context),
    expected: expectedOf(context),
    ...(known ? { brand: known } : {}),
    ...(masked ? { masked } : {}),
    ...(valid !== undefined ? { valid } : {}),
  };
}

export const captureMachine = setup({
  types: {
    context: {} as CaptureContext,
    events: {} as CaptureEvent,
    input: {} as CaptureInput,
    output: {} as CaptureOutput,
    emitted: {} as CaptureEmitted,
  },
  delays: {
    firstDigit: ({ context }) => context.delays.firstDigitMs,
    betweenDigits: ({ context }) => context.delays.betweenDigitsMs,
    wholeField: ({ context }) => context.delays.wholeFieldMs,
  },
  actors: {
    // supplied by the runtime (machine.provide): the gateway call, with the card read from the context
    authorize: fromPromise<GatewayResult, { context: CaptureContext }>(async () => {
      throw new Error('the capture runtime provides the authorize actor');
    }),
  },
  guards: {
    isDigit: ({ event }) => event.type === 'KEY' && event.key >= '0' && event.key <= '9',
    isStar: ({ event }) => event.type === 'KEY' && event.key === '*',
    isHash: ({ event }) => event.type === 'KEY' && event.key === '#',
    bufferEmpty: ({ context }) => enteredOf(context) === 0,
    bufferFull: ({ context }) => enteredOf(context) >= (context.step === 'payment-card-number' ? 19 : context.step === 'installments' ? 2 : context.step === 'expiration-date' ? 4 : context.step === 'security-code' ? 4 : 1),
    stepComplete: ({ context }) => complete(context),
    stepValid: ({ context }) => stepError(context) === undefined,
    noAttemptsLeft: ({ context }) => (context.attempts[context.step] ?? 0) >= context.maxAttempts,
    allDone: ({ context }) => nextStep(context) === undefined,
    autoSubmit: ({ context }) => context.autoSubmit,
    approved: ({ event }) => (event as unknown as { output: GatewayResult }).output.status === 'approved',
    amountRefused: ({ context }) => context.step === 'amount-confirmation' && context.entry[0] === 2,
    fieldRequested: ({ context, event }) => event.type === 'RECAPTURE' && context.fields.includes(event.field),
  },
  actions: {
    addDigit: assign(({ context, event }) => {
      if (event.type !== 'KEY') return {};
      const d = Number(event.key);
      const buffer = bufferOf(context);
      return withBuffer(context, buffer instanceof CardDigits ? buffer.with(d) : [...buffer, d]);
    }),
    removeDigit: assign(({ context }) => {
      const buffer = bufferOf(context);
      return withBuffer(context, buffer instanceof CardDigits ? buffer.withoutLast() : buffer.slice(0, -1));
    }),
    clearStep: assign(({ context }) => {
      const buffer = bufferOf(context);
      return withBuffer(context, buffer instanceof CardDigits ? CardDigits.EMPTY : []);
    }),
    /** Records the valid step and what follows from it (brand, method), and moves on. */
    acceptStep: assign(({ context }) => {
      const done = [...context.done, context.step];
      const extra: Partial<CaptureContext> = {};
      if (context.step === 'payment-card-number') {
        const r = checkPan(context.pan, context.acceptedBrands);
        const brand = r.ok ? r.brand : undefined;
        extra.brand = brand;
        // a new brand may want a security code of another length: ask for it again
        if (context.done.includes('security-code') && context.securityCode.length !== securityCodeLength(brand)) {
          extra.securityCode = CardDigits.EMPTY;
          done.splice(done.indexOf('security-code'), 1);
        }
      }
      if (context.step === 'payment-method') {
        const kind = METHOD_KEYS[context.entry[0]! - 1]!;
        // 分割 needs its count, asked next
        extra.chosenMethod = kind === 'installments' ? { kind, count: 0 } : { kind };
      }
      if (context.step === 'installments') {
        extra.chosenMethod = { kind: 'installments', count: context.entry.reduce((n, d) => n * 10 + d, 0) };
      }
      const next = nextStep({ ...context, ...extra, done }) ?? context.step;
      return { ...extra, done, step: next, entry: [], lastError: undefined };
    }),
    rejectStep: assign(({ context }) => ({
      attempts: { ...context.attempts, [context.step]: (context.attempts[context.step] ?? 0) + 1 },
      lastError: stepError(context),
    })),
    rejectTimeout: assign(({ context }) => ({
      attempts: { ...context.attempts, [context.step]: (context.attempts[context.step] ?? 0) + 1 },
      lastError: 'timeout' as const,
    })),
    failTooMany: assign({ failure: 'too-many-failed-attempts' as const, outcome: 'failed' as const }),
    failAmount: assign({ failure: 'amount-not-confirmed' as const, outcome: 'failed' as const }),
    failConnector: assign({ failure: 'payment-connector-error' as const, outcome: 'failed' as const }),
    markCancelled: assign({ outcome: 'cancelled' as const }),
    recapture: assign(({ context, event }) => {
      if (event.type !== 'RECAPTURE') return {};
      // the field asked for starts empty, and so does a field left half keyed (it is asked again in turn)
      const left = context.done.includes(context.step) ? {} : withBuffer(context, bufferOf(context) instanceof CardDigits ? CardDigits.EMPTY : []);
      const cleared: Partial<CaptureContext> =
        event.field === 'payment-card-number' ? { pan: CardDigits.EMPTY, brand: undefined } : event.field === 'expiration-date' ? { expiry: CardDigits.EMPTY } : { securityCode: CardDigits.EMPTY };
      return { ...left, ...cleared, step: event.field, done: context.done.filter((s) => s !== event.field), attempts: { ...context.attempts, [event.field]: 0 }, lastError: undefined, entry: [] };
    }),
    setMethod: assign(({ event }) => (event.type === 'SET_METHOD' ? { chosenMethod: event.method } : {})),
    keepResult: assign(({ event }) => ({ result: (event as unknown as { output: GatewayResult }).output, outcome: 'completed' as const })),
    promptStep: emit(({ context }) => ({ type: 'prompt' as const, prompt: promptFor(context, context.step), ...(context.step === 'amount-confirmation' && context.amount ? { amount: context.amount } : {}) })),
    promptError: emit(({ context }) => ({ type: 'prompt' as const, prompt: `error-${context.lastError ?? 'timeout'}` as PromptId })),
    promptRestart: emit({ type: 'prompt', prompt: 'field-restarted' }),
    promptProcessing: emit({ type: 'prompt', prompt: 'processing' }),
    emitProgress: emit(({ context }) => progress(context)),
    emitAccepted: emit(({ context }) => progress(context, true)),
    emitError: emit(({ context }) => ({
      type: 'capture.error' as const,
      paymentId: context.paymentId,
      field: context.step,
      error: context.lastError ?? 'timeout',
      attempt: context.attempts[context.step] ?? 0,
      attemptsLeft: Math.max(0, context.maxAttempts - (context.attempts[context.step] ?? 0)),
    })),
    emitReady: emit(({ context }) => ({ type: 'payment.ready' as const, paymentId: context.paymentId })),
    emitAuthorizing: emit(({ context }) => ({ type: 'payment.authorizing' as const, paymentId: context.paymentId })),
  },
}).createMachine({
  id: 'capture',
  context: ({ input }) => ({
    ...input,
    step: stepsOf(input)[0]!,
    pan: CardDigits.EMPTY,
    expiry: CardDigits.EMPTY,
    securityCode: CardDigits.EMPTY,
    entry: [],
    brand: undefined,
    chosenMethod: input.methodChooser === 'agent' ? input.method : input.methodChooser === 'none' ? { kind: 'lump' } : undefined,
    done: [],
    attempts: {},
    lastError: undefined,
    result: undefined,
    failure: undefined,
    outcome: undefined,
  }),
  initial: 'step',
  on: {
    CANCEL: { target: '.cancelled', actions: 'markCancelled' },
    SET_METHOD: { actions: 'setMethod' },
  },
  states: {
    step: {
      entry: ['promptStep', 'emitProgress'],
      initial: 'awaitingFirst',
      after: { wholeField: { target: 'rejected', actions: 'rejectTimeout' } },
      on: {
        RECAPTURE: { guard: 'fieldRequested', target: 'step', reenter: true, actions: 'recapture' },
      },
      states: {
        awaitingFirst: {
          after: { firstDigit: { target: '#capture.rejected', actions: 'rejectTimeout' } },
          on: {
            KEY: [
              { guard: 'isHash', target: '#capture.checking' },
              // * on an empty field starts the field again, from its prompt
              { guard: 'isStar', target: '#capture.step', reenter: true, actions: ['clearStep', 'promptRestart'] },
              { guard: 'isDigit', target: 'entering', actions: ['addDigit', 'emitProgress'] },
            ],
          },
        },
        entering: {
          always: [
            { guard: 'stepComplete', target: '#capture.checking' },
            { guard: 'bufferEmpty', target: 'awaitingFirst' },
          ],
          after: { betweenDigits: { target: '#capture.rejected', actions: 'rejectTimeout' } },
          on: {
            KEY: [
              { guard: 'isHash', target: '#capture.checking' },
              // * takes back the last digit (on an empty field, awaitingFirst restarts the field)
              { guard: 'isStar', target: 'entering', reenter: true, actions: ['removeDigit', 'emitProgress'] },
              { guard: 'bufferFull', target: '#capture.checking' },
              { guard: 'isDigit', target: 'entering', reenter: true, actions: ['addDigit', 'emitProgress'] },
            ],
          },
        },
      },
    },
    checking: {
      always: [
        { guard: 'amountRefused', target: 'failed', actions: 'failAmount' },
        { guard: 'stepValid', target: 'accepted' },
        { target: 'rejected', actions: 'rejectStep' },
      ],
    },
    accepted: {
      entry: ['emitAccepted', 'acceptStep'],
      always: [{ guard: 'allDone', target: 'ready' }, { target: 'step' }],
    },
    rejected: {
      entry: ['emitError'],
      always: [
        { guard: 'noAttemptsLeft', target: 'failed', actions: 'failTooMany' },
        { target: 'step', actions: ['promptError', 'clearStep'] },
      ],
    },
    ready: {
      entry: 'emitReady',
      always: { guard: 'autoSubmit', target: 'authorizing' },
      on: {
        SUBMIT: 'authorizing',
        RECAPTURE: { guard: 'fieldRequested', target: 'step', actions: 'recapture' },
      },
    },
    authorizing: {
      entry: ['emitAuthorizing', 'promptProcessing'],
      // the gateway has the card: a cancel now cannot stop it, so it waits for the answer
      on: { CANCEL: {}, SET_METHOD: {} },
      invoke: {
        id: 'authorize',
        src: 'authorize',
        input: ({ context }) => ({ context }),
        onDone: { target: 'completed', actions: 'keepResult' },
        onError: { target: 'failed', actions: 'failConnector' },
      },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }): CaptureOutput => {
    if (context.outcome === 'cancelled') return { paymentId: context.paymentId, status: 'cancelled' };
    if (context.outcome === 'failed') return { paymentId: context.paymentId, status: 'failed', ...(context.failure ? { failure: context.failure } : {}), ...(context.lastError ? { error: context.lastError } : {}) };
    const result = context.result!;
    return { paymentId: context.paymentId, status: result.status, result };
  },
});
