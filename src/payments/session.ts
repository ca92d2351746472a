/**
 * A call's payments: the runtime around the session and capture flows.
 *
 * It feeds the caller's keys and the agent's commands to the flows, calls the gateway when the
 * capture asks (`authorize`), tells the call when masking must be on, asks for the prompts the
 * caller must hear, and turns what the flows emit into the events a desktop may see — built
 * field by field from counts, brand, masked forms and results, so no card digit can ride along.
 *
 * Card data: the flows make a new CardDigits for every key; this runtime wipes each one the
 * capture replaces, wipes the card right after the gateway call (whatever its outcome), and
 * wipes what is left when a capture ends or the call does. Logs carry counts and codes.
 */

import { createActor, fromPromise, type ActorRefFrom, type InspectionEvent } from 'xstate';
import { type CaptureContext, type CaptureEmitted, type CaptureField, type CaptureOutput, type CaptureStep, type MethodKind, type PromptId, type StepError, captureMachine } from '../../flows/capture.machine.ts';
import { type MaskPolicy, type SessionEmitted, maskingOn, sessionMachine } from '../../flows/session.machine.ts';
import type { Clock } from '../clock.ts';
import { InvalidStateError } from '../errors.ts';
import { TypedEmitter } from '../events.ts';
import type { Logger } from '../log.ts';
import { type CardBrand, CARD_BRANDS, checkExpiry } from './card.ts';
import { CardDigits } from './digits.ts';
import { type CardInput, DEFAULT_GATEWAY_TIMEOUT_MS, type Gateway, type GatewayResult, type PaymentMethod } from './gateway.ts';
import { type CardTestingGuard, type CardTestingLimits, DEFAULT_CARD_TESTING_LIMITS } from './guard.ts';

/** A tenant's payment settings. */
export interface PaymentSettings {
  readonly tenantId: string;
  readonly policy: MaskPolicy;
  readonly fields: readonly CaptureField[];
  readonly acceptedBrands: readonly CardBrand[];
  readonly maxAttempts: number;
  readonly delays: { readonly firstDigitMs: number; readonly betweenDigitsMs: number; readonly wholeFieldMs: number };
  readonly methodChooser: 'agent' | 'caller' | 'none';
  readonly allowedMethods: readonly MethodKind[];
  readonly installmentCounts: readonly number[];
  readonly confirmAmount: boolean;
  readonly autoSubmit: boolean;
  /** How long the result is told before the call goes back to pass-through. */
  readonly resultHoldMs: number;
  readonly gatewayTimeoutMs: number;
  readonly cardTesting: CardTestingLimits;
}

export const DEFAULT_PAYMENT_SETTINGS: PaymentSettings = {
  tenantId: 'default',
  policy: 'always',
  fields: ['payment-card-number', 'expiration-date', 'security-code'],
  acceptedBrands: [...CARD_BRANDS],
  maxAttempts: 3,
  delays: { firstDigitMs: 10_000, betweenDigitsMs: 5_000, wholeFieldMs: 60_000 },
  methodChooser: 'none',
  allowedMethods: ['lump', 'installments', 'bonus-lump', 'revolving'],
  installmentCounts: [3, 5, 6, 10, 12, 15, 18, 20, 24],
  confirmAmount: false,
  autoSubmit: false,
  resultHoldMs: 4_000,
  gatewayTimeoutMs: DEFAULT_GATEWAY_TIMEOUT_MS,
  cardTesting: DEFAULT_CARD_TESTING_LIMITS,
};

export type PaymentOperation = 'sale' | 'authorize' | 'verify' | 'store';

export interface PaymentRequest {
  readonly paymentId: string;
  /** The API caller's key: the gateway call's key derives from it. */
  readonly idempotencyKey: string;
  readonly operation: PaymentOperation;
  /** In the currency's minor unit; needed for sale and authorize. */
  readonly amount?: { readonly value: number; readonly currency: string };
  /** The agent's choice of payment method (when the tenant lets the agent choose). */
  readonly method?: PaymentMethod;
  /** The fields to capture, if not the tenant's. */
  readonly fields?: readonly CaptureField[];
  /** For `store`: the merchant's member ID. */
  readonly memberId?: string;
  /** The merchant's order ID; the payment ID if not given. */
  readonly orderId?: string;
}

/** What a payment's end says: the gateway result, with card data it never had. */
export type PublicResult = Pick<
  GatewayResult,
  'gateway' | 'operation' | 'status' | 'reason' | 'resultCode' | 'detailCode' | 'message' | 'transactionId' | 'approvalNumber' | 'gatewayErrorCode' | 'gatewayErrorMessage' | 'requestedAt' | 'respondedAt' | 'token' | 'brand' | 'last4' | 'amount' | 'currency'
>;

export type RefusalReason = 'payment-in-progress' | 'card-testing-limit-call' | 'card-testing-limit-caller' | 'invalid-request';

/** Events for the agent's desktop and webhooks: counts and masked forms only. */
export type PaymentEvent =
  | { readonly type: 'payment.started'; readonly callId: string; readonly paymentId: string; readonly operation: PaymentOperation; readonly amount?: { readonly value: number; readonly currency: string } }
  | { readonly type: 'payment.refused'; readonly callId: string; readonly paymentId: string; readonly reason: RefusalReason; readonly message: string }
  | { readonly type: 'capture.progress'; readonly callId: string; readonly paymentId: string; readonly field: CaptureStep; readonly entered: number; readonly expected: number; readonly brand?: CardBrand; readonly masked?: string; readonly valid?: boolean }
  | { readonly type: 'capture.error'; readonly callId: string; readonly paymentId: string; readonly field: CaptureStep; readonly error: StepError; readonly attempt: number; readonly attemptsLeft: number }
  | { readonly type: 'payment.ready'; readonly callId: string; readonly paymentId: string }
  | { readonly type: 'payment.authorizing'; readonly callId: string; readonly paymentId: string }
  | { readonly type: 'payment.completed'; readonly callId: string; readonly paymentId: string; readonly result: PublicResult }
  | { readonly type: 'payment.failed'; readonly callId: string; readonly paymentId: string; readonly reason: string; readonly error?: StepError; readonly result?: PublicResult }
  | { readonly type: 'payment.cancelled'; readonly callId: string; readonly paymentId: string };

interface PaymentSessionEvents extends Record<string, unknown[]> {
  event: [PaymentEvent];
  /** A prompt for the caller's leg (never the agent's). */
  prompt: [{ readonly prompt: PromptId; readonly amount?: { readonly value: number; readonly currency: string } }];
  /** Masking must be on (true) or may be off (false) for the caller's digits. */
  masking: [boolean];
}

export interface PaymentSessionOptions {
  readonly callId: string;
  /** The caller's number (From user), for the card-testing limits per caller. */
  readonly callerNumber: string | undefined;
  readonly settings: PaymentSettings;
  readonly gateway: Gateway;
  readonly guard: CardTestingGuard;
  readonly clock: Clock;
  readonly logger: Logger;
}

type Capture = ActorRefFrom<typeof captureMachine>;

const KEYS = new Set(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#']);

export class PaymentSession extends TypedEmitter<PaymentSessionEvents> {
  readonly callId: string;
  readonly #options: PaymentSessionOptions;
  readonly #session;
  readonly #requests = new Map<string, PaymentRequest>();
  /** Idempotency key of a start → the payment it started. */
  readonly #started = new Map<string, string>();
  #capture: Capture | undefined;
  #masking: boolean;
  /** A gateway call still running: the call may end before it answers. */
  #inflight: Promise<void> | undefined;
  #closed = false;

  constructor(options: PaymentSessionOptions) {
    super();
    this.callId = options.callId;
    this.#options = options;
    const machine = sessionMachine.provide({
      actors: { capture: captureMachine.provide({ actors: { authorize: fromPromise(({ input }: { input: { context: CaptureContext } }) => this.#authorize(input.context)) } }) },
    });
    this.#session = createActor(machine, {
      input: { callId: options.callId, policy: options.settings.policy, resultHoldMs: options.settings.resultHoldMs },
      clock: options.clock,
      // a capture is attached before it starts, so nothing it emits on entry is missed
      inspect: (e: InspectionEvent) => {
        if (e.type === '@xstate.actor' && e.actorRef !== this.#session && (e.actorRef as Capture).id === 'capture') this.#attach(e.actorRef as Capture);
      },
    });
    this.#session.on('*', (e) => this.#sessionEmitted(e));
    this.#session.subscribe({ next: (s) => this.#setMasking(maskingOn(s)), error: (err) => this.#options.logger.error({ callId: this.callId, err: { name: (err as Error).name } }, 'payment session failed') });
    this.#masking = options.settings.policy === 'always';
    this.#session.start();
  }

  /** Whether the caller's digits must be masked now. */
  get masking(): boolean {
    return this.#masking;
  }

  /** The payment now being captured or authorized, if any. */
  get activePaymentId(): string | undefined {
    const s = this.#session.getSnapshot();
    return s.value === 'capturing' ? s.context.paymentId : undefined;
  }

  /**
   * Starts a payment on the call. The same idempotency key answers the payment it started.
   * Refused (and said so in a `payment.refused` event) while another runs, past the
   * card-testing limits, or for a request that cannot be captured.
   */
  start(request: PaymentRequest): { ok: true; paymentId: string } | { ok: false; reason: RefusalReason; message: string } {
    if (this.#closed) throw new InvalidStateError('the call has ended');
    const earlier = this.#started.get(request.idempotencyKey);
    if (earlier) return { ok: true, paymentId: earlier };
    const refuse = (reason: RefusalReason, message: string): { ok: false; reason: RefusalReason; message: string } => {
      this.emit('event', { type: 'payment.refused', callId: this.callId, paymentId: request.paymentId, reason, message });
      this.#options.logger.info({ callId: this.callId, paymentId: request.paymentId, reason }, 'payment refused');
      return { ok: false, reason, message };
    };
    const settings = this.#options.settings;
    if ((request.operation === 'sale' || request.operation === 'authorize') && (!request.amount || !Number.isInteger(request.amount.value) || request.amount.value <= 0)) {
      return refuse('invalid-request', 'a sale or authorization needs an amount');
    }
    if (request.operation === 'store' && !request.memberId) return refuse('invalid-request', 'storing a card needs a member ID');
    const fields = request.fields ?? settings.fields;
    if (!fields.includes('payment-card-number') || !fields.includes('expiration-date')) return refuse('invalid-request', 'the card number and expiry are always captured');
    if (this.activePaymentId !== undefined) return refuse('payment-in-progress', 'a payment is already running on this call');
    const verdict = this.#options.guard.check(settings.tenantId, this.callId, this.#options.callerNumber, settings.cardTesting);
    if (!verdict.allowed) return refuse(verdict.reason, `${verdict.failures} cards failed ${verdict.reason === 'card-testing-limit-call' ? 'on this call' : 'for this caller in the last hour'}; no more payments are taken`);
    this.#requests.set(request.paymentId, request);
    this.#started.set(request.idempotencyKey, request.paymentId);
    this.#session.send({
      type: 'START_PAYMENT',
      input: {
        paymentId: request.paymentId,
        fields,
        acceptedBrands: settings.acceptedBrands,
        ...(request.amount ? { amount: request.amount } : {}),
        confirmAmount: settings.confirmAmount && request.amount !== undefined,
        methodChooser: request.operation === 'sale' || request.operation === 'authorize' ? (request.method ? 'agent' : settings.methodChooser) : 'none',
        ...(request.method ? { method: request.method } : {}),
        allowedMethods: settings.allowedMethods,
        installmentCounts: settings.installmentCounts,
        maxAttempts: settings.maxAttempts,
        delays: settings.delays,
        todayMs: this.#options.clock.wallMs(),
        autoSubmit: settings.autoSubmit,
      },
    });
    return { ok: true, paymentId: request.paymentId };
  }

  /** A key the caller pressed (any channel); A–D are not payment keys. */
  key(digit: string): void {
    if (this.#closed || !KEYS.has(digit)) return;
    this.#session.send({ type: 'KEY', key: digit as '0' });
  }

  recapture(field: CaptureField): void {
    if (!this.#closed) this.#session.send({ type: 'RECAPTURE', field });
  }

  setMethod(method: PaymentMethod): void {
    if (!this.#closed) this.#session.send({ type: 'SET_METHOD', method });
  }

  submit(): void {
    if (!this.#closed) this.#session.send({ type: 'SUBMIT' });
  }

  cancel(): void {
    if (!this.#closed) this.#session.send({ type: 'CANCEL' });
  }

  /**
   * The call has ended: the capture stops and its card digits are wiped. A gateway call still
   * running is waited for, and its result still reported — the card may have been charged.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const capture = this.#capture;
    const inflight = this.#inflight;
    // only a payment still being keyed ends with the call; a finished one keeps its result
    const active = this.activePaymentId;
    // a gateway call still running keeps its card until it returns (its finally wipes it)
    if (capture && !inflight) this.#wipe(capture.getSnapshot().context);
    if (capture && !inflight && active !== undefined) {
      this.emit('event', { type: 'payment.cancelled', callId: this.callId, paymentId: active });
      this.#log({ paymentId: active, status: 'cancelled', reason: 'call-ended' }, 'payment ended');
    }
    this.#session.send({ type: 'CALL_ENDED' });
    this.#session.stop();
    await inflight;
    this.#options.guard.callEnded(this.#options.settings.tenantId, this.callId);
    this.removeAllListeners();
  }

  #attach(capture: Capture): void {
    this.#capture = capture;
    let last = { pan: CardDigits.EMPTY, expiry: CardDigits.EMPTY, securityCode: CardDigits.EMPTY };
    capture.subscribe({
      next: (snapshot) => {
        // wipe every value the capture replaced
        const c = snapshot.context;
        for (const key of ['pan', 'expiry', 'securityCode'] as const) if (last[key] !== c[key] && last[key] !== CardDigits.EMPTY) last[key].wipe();
        last = { pan: c.pan, expiry: c.expiry, securityCode: c.securityCode };
        if (snapshot.status === 'done') this.#wipe(c);
      },
      error: () => this.#wipe(capture.getSnapshot().context),
    });
    capture.on('*', (e) => this.#captureEmitted(e));
  }

  #captureEmitted(e: CaptureEmitted): void {
    const base = { callId: this.callId };
    switch (e.type) {
      case 'prompt':
        this.emit('prompt', { prompt: e.prompt, ...(e.amount ? { amount: { value: e.amount.value, currency: e.amount.currency } } : {}) });
        return;
      case 'capture.progress':
        this.emit('event', {
          type: 'capture.progress',
          ...base,
          paymentId: e.paymentId,
          field: e.field,
          entered: e.entered,
          expected: e.expected,
          ...(e.brand ? { brand: e.brand } : {}),
          ...(e.masked ? { masked: e.masked } : {}),
          ...(e.valid !== undefined ? { valid: e.valid } : {}),
        });
        return;
      case 'capture.error':
        this.#log({ paymentId: e.paymentId, field: e.field, error: e.error, attempt: e.attempt }, 'capture error');
        this.emit('event', { type: 'capture.error', ...base, paymentId: e.paymentId, field: e.field, error: e.error, attempt: e.attempt, attemptsLeft: e.attemptsLeft });
        return;
      case 'payment.ready':
        this.emit('event', { type: 'payment.ready', ...base, paymentId: e.paymentId });
        return;
      case 'payment.authorizing':
        this.emit('event', { type: 'payment.authorizing', ...base, paymentId: e.paymentId });
        return;
    }
  }

  #sessionEmitted(e: SessionEmitted): void {
    if (e.type === 'payment.started') {
      const request = this.#requests.get(e.paymentId)!;
      this.#log({ paymentId: e.paymentId, operation: request.operation }, 'payment started');
      this.emit('event', { type: 'payment.started', callId: this.callId, paymentId: e.paymentId, operation: request.operation, ...(request.amount ? { amount: { value: request.amount.value, currency: request.amount.currency } } : {}) });
    } else if (e.type === 'payment.refused') {
      this.emit('event', { type: 'payment.refused', callId: this.callId, paymentId: e.paymentId, reason: e.reason, message: 'a payment is already running on this call' });
    } else if (e.type === 'payment.ended') {
      this.#ended(e.output);
    }
  }

  /** A capture's end: the desktop event, the prompt, the count of failed cards. */
  #ended(output: CaptureOutput): void {
    const settings = this.#options.settings;
    const base = { callId: this.callId, paymentId: output.paymentId };
    const result = output.result ? publicResult(output.result) : undefined;
    let prompt: PromptId;
    if (output.status === 'approved') {
      this.emit('event', { type: 'payment.completed', ...base, result: result! });
      prompt = 'approved';
    } else if (output.status === 'cancelled') {
      this.emit('event', { type: 'payment.cancelled', ...base });
      prompt = 'cancelled';
    } else {
      const reason = output.status === 'failed' ? output.failure! : (result?.reason ?? output.status);
      this.emit('event', { type: 'payment.failed', ...base, reason, ...(output.error ? { error: output.error } : {}), ...(result ? { result } : {}) });
      prompt = output.status === 'declined' ? 'declined' : 'failed';
      if (output.status === 'declined' || output.failure === 'too-many-failed-attempts') this.#options.guard.recordFailure(settings.tenantId, this.callId, this.#options.callerNumber);
    }
    this.#log({ paymentId: output.paymentId, status: output.status, ...(output.failure ? { failure: output.failure } : {}), ...(result?.reason ? { reason: result.reason } : {}), ...(result?.detailCode ? { detailCode: result.detailCode } : {}) }, 'payment ended');
    this.emit('prompt', { prompt });
  }

  /** The capture's gateway call: the card leaves CardDigits only inside the adapter, and is wiped after. */
  async #authorize(context: CaptureContext): Promise<GatewayResult> {
    const request = this.#requests.get(context.paymentId)!;
    const call = this.#gatewayCall(request, context);
    this.#inflight = call.then(
      (result) => {
        if (this.#closed) this.#ended({ paymentId: context.paymentId, status: result.status, result });
      },
      () => {
        if (this.#closed) this.#ended({ paymentId: context.paymentId, status: 'failed', failure: 'payment-connector-error' });
      },
    );
    try {
      return await call;
    } finally {
      this.#inflight = undefined;
    }
  }

  async #gatewayCall(request: PaymentRequest, context: CaptureContext): Promise<GatewayResult> {
    const gateway = this.#options.gateway;
    const options = { idempotencyKey: `${request.idempotencyKey}:${request.operation}`, timeoutMs: this.#options.settings.gatewayTimeoutMs };
    const orderId = request.orderId ?? request.paymentId;
    try {
      const card = cardInput(context);
      switch (request.operation) {
        case 'sale':
        case 'authorize': {
          const charge = { orderId, amount: request.amount!.value, currency: request.amount!.currency, card, ...(context.chosenMethod ? { method: context.chosenMethod } : {}) };
          return await (request.operation === 'sale' ? gateway.sale(charge, options) : gateway.authorize(charge, options));
        }
        case 'verify':
          return await gateway.verify({ orderId, card }, options);
        case 'store':
          return await gateway.storeCard({ memberId: request.memberId!, card }, options);
      }
    } finally {
      this.#wipe(context);
    }
  }

  #wipe(context: Pick<CaptureContext, 'pan' | 'expiry' | 'securityCode'>): void {
    context.pan.wipe();
    context.expiry.wipe();
    context.securityCode.wipe();
  }

  #setMasking(on: boolean): void {
    if (on === this.#masking) return;
    this.#masking = on;
    this.emit('masking', on);
  }

  #log(fields: Record<string, unknown>, message: string): void {
    this.#options.logger.info({ callId: this.callId, ...fields }, message);
  }
}

/** The card as the gateway port takes it, from the capture's context. */
function cardInput(context: CaptureContext): CardInput {
  const expiry = checkExpiry(
    Array.from({ length: context.expiry.length }, (_, i) => context.expiry.at(i)),
    context.todayMs,
  );
  // the capture accepted both (start() requires them), so neither can be missing here
  if (!expiry.ok || context.brand === undefined) throw new InvalidStateError('the capture ended without a valid card number and expiry');
  return { pan: context.pan, ...(context.securityCode.length > 0 ? { securityCode: context.securityCode } : {}), expiry: expiry.expiry, brand: context.brand };
}

/** The result as it may leave hushpay: named fields only. */
export function publicResult(r: GatewayResult): PublicResult {
  const keep = ['gateway', 'operation', 'status', 'reason', 'resultCode', 'detailCode', 'message', 'transactionId', 'approvalNumber', 'gatewayErrorCode', 'gatewayErrorMessage', 'requestedAt', 'respondedAt', 'token', 'brand', 'last4', 'amount', 'currency'] as const;
  const out: Record<string, unknown> = {};
  for (const k of keep) if (r[k] !== undefined) out[k] = r[k];
  return out as unknown as PublicResult;
}
