/**
 * The Stripe gateway: hushpay's Gateway over the official `stripe` package (v23), pointed at
 * api.stripe.com or at any host, port and protocol (tests run it against a fake on loopback).
 *
 * Raw card numbers reach Stripe only on accounts Stripe has enabled for raw card data (a PCI DSS
 * AOC), and telephone orders are flagged MOTO (interfaces.md §3.1). The requests:
 *
 * | operation | requests |
 * |---|---|
 * | authorize, sale | `POST /v1/payment_methods` (type card) → `POST /v1/payment_intents` (confirm, `payment_method_options[card][moto]`, capture_method manual / automatic, `metadata[order_id]`, JP installments) |
 * | capture | `POST /v1/payment_intents/:id/capture` (amount_to_capture) |
 * | void | `POST /v1/payment_intents/:id/cancel` |
 * | refund | `POST /v1/refunds` (payment_intent, amount) |
 * | verify | payment method → `POST /v1/setup_intents` (confirm, MOTO) |
 * | storeCard | payment method → the member's Customer (`GET /v1/customers/search` on `metadata[member_id]`, else `POST /v1/customers`) → `POST /v1/setup_intents` (customer, usage off_session, confirm, MOTO) → the Customer's `invoice_settings[default_payment_method]` |
 * | chargeStored | the token's payment method and its Customer, or the member's Customer and its default payment method → `POST /v1/payment_intents` (customer, off_session, confirm) |
 *
 * verify uses a SetupIntent because that is what Stripe documents for checking a card without
 * charging it (Stripe runs the card check when the SetupIntent is confirmed); a PaymentIntent
 * cannot be for 0 (Stripe has a minimum charge amount per currency).
 *
 * **Idempotency and the retry rule.** Every POST carries a key derived from the call's
 * idempotency key (`${key}:pm`, `${key}:pi`, `${key}:si`, …), so the same logical operation sends
 * the same keys, and a caller who retries the whole operation with its key gets Stripe's saved
 * answers rather than a second charge. Because Stripe honours the key, a request that failed on
 * the network, or with 429 or 5xx, is sent again with the same key, at most MAX_ATTEMPTS times,
 * pausing `retryDelayMs` (doubling) on the injected clock, and never past the deadline. A
 * `Stripe-Should-Retry` header overrides the status either way. A card error (402) is an
 * answer, never retried; an idempotency error (400 for a key reused with other parameters, 409
 * for a key still in use) is an invalid request, not retried. The package's own retries are off
 * (`maxNetworkRetries: 0`): one rule, on the injected clock. (The package still resends once a
 * request whose connection closed with ECONNRESET/EPIPE in its own Node client; with the fetch
 * client used here that error's code sits on its cause and the rule does not fire — and were it
 * to, it would resend with the same key.)
 *
 * **The deadline** (call.ts, on the injected clock) ends the call: each request is raced against
 * the deadline's signal, and the same signal aborts the HTTP request itself — the package is
 * given a fetch-based HTTP client whose fetch takes the signal of the call that sent the request
 * (found through a private header, removed before the request leaves). Stripe may still act on
 * a request that was aborted in flight; a timeout says "outcome unknown", and sending the same
 * operation again with the same idempotency key answers what Stripe did.
 *
 * **Card data.** The digits are revealed only inside the function that builds the payment
 * method request (again for each attempt, so nothing of ours holds them between attempts).
 * Results carry brand and last four; error messages from Stripe are copied with any long digit
 * run masked, and no request body is ever put in a message.
 */

import Stripe from 'stripe';
import type { Clock } from '../clock.ts';
import { GatewayRequestError, InvalidStateError } from '../errors.ts';
import { type CardBrand, CARD_BRANDS } from './card.ts';
import { type Deadline, deadline, isoNow, pause } from './call.ts';
import {
  type CallOptions,
  type CardInput,
  type ChargeRequest,
  type ChargeStoredRequest,
  DEFAULT_GATEWAY_TIMEOUT_MS,
  type DeclineReason,
  type Gateway,
  type GatewayOperation,
  type GatewayResult,
  type GatewayStatus,
  type PaymentMethod,
  type ReferenceRequest,
  type StoreCardRequest,
  type VerifyRequest,
} from './gateway.ts';

export interface StripeGatewayOptions {
  readonly apiKey: string;
  /** Default api.stripe.com. */
  readonly host?: string;
  readonly port?: number;
  readonly protocol?: 'http' | 'https';
  readonly clock: Clock;
  /** The pause before the first retry; it doubles for each further one. Default 500 ms. */
  readonly retryDelayMs?: number;
}

/** Sends of one request, counting the first. */
export const MAX_ATTEMPTS = 3;
const DEFAULT_RETRY_DELAY_MS = 500;

/** Carries a request's call to our fetch; removed before the request leaves the process. */
const CALL_HEADER = 'x-hushpay-call';

/** Stripe's decline_code or code → hushpay's reason; anything else is card-declined. */
const DECLINE_REASONS: ReadonlyMap<string, DeclineReason> = new Map([
  ['insufficient_funds', 'insufficient-funds'],
  ['expired_card', 'expired-card'],
  ['incorrect_cvc', 'incorrect-security-code'],
  ['invalid_cvc', 'incorrect-security-code'],
  ['incorrect_number', 'incorrect-number'],
  ['invalid_number', 'incorrect-number'],
  ['lost_card', 'lost-or-stolen'],
  ['stolen_card', 'lost-or-stolen'],
  ['processing_error', 'processing-error'],
]);

const MESSAGES: Readonly<Record<DeclineReason | 'approved', string>> = {
  approved: 'Approved.',
  'insufficient-funds': 'The card has insufficient funds.',
  'expired-card': 'The card has expired.',
  'incorrect-security-code': 'The security code is incorrect.',
  'incorrect-number': 'The card number is incorrect.',
  'lost-or-stolen': 'The card was declined.',
  'card-declined': 'The card was declined.',
  'processing-error': 'An error occurred while processing the card. Try again.',
  timeout: 'The payment gateway did not answer in time. Check the order before trying again.',
  'invalid-request': 'The payment gateway refused the request as invalid.',
  'gateway-unavailable': 'The payment gateway could not be reached.',
};

/** Stripe's reason for a decline: its decline_code, else its code. */
export function declineReason(declineCode: string | undefined, code: string | undefined): DeclineReason {
  return (declineCode !== undefined ? DECLINE_REASONS.get(declineCode) : undefined) ?? (code !== undefined ? DECLINE_REASONS.get(code) : undefined) ?? 'card-declined';
}

/** JP installments (`payment_method_options[card][installments][plan]`); a lump sum sends none. */
export function installmentPlan(method: PaymentMethod | undefined): Stripe.PaymentIntentCreateParams.PaymentMethodOptions.Card.Installments.Plan | undefined {
  switch (method?.kind) {
    case undefined:
    case 'lump':
      return undefined;
    case 'installments':
      return { type: 'fixed_count', count: method.count, interval: 'month' };
    case 'bonus-lump':
      return { type: 'bonus' };
    case 'revolving':
      return { type: 'revolving' };
  }
}

/** What a result says besides the fields every result has. */
interface Outcome {
  readonly status: GatewayStatus;
  readonly reason?: DeclineReason | undefined;
  readonly resultCode: string;
  readonly detailCode: string;
  readonly message: string;
  readonly transactionRef?: string | undefined;
  readonly approvalNumber?: string | undefined;
  readonly gatewayErrorCode?: string | undefined;
  readonly gatewayErrorMessage?: string | undefined;
  readonly token?: string | undefined;
  readonly brand?: CardBrand | undefined;
  readonly last4?: string | undefined;
  readonly amount?: number | undefined;
  readonly currency?: string | undefined;
}

/** One gateway call in progress. */
interface Call {
  readonly key: string;
  readonly deadline: Deadline;
  readonly timeoutMs: number;
  /** What may be shown of the card, once known: for a result that ends early. */
  card?: { readonly brand?: CardBrand | undefined; readonly last4?: string | undefined };
}

type StripeError = InstanceType<typeof Stripe.errors.StripeError>;

export class StripeGateway implements Gateway {
  readonly name = 'stripe';
  readonly #stripe: Stripe;
  readonly #clock: Clock;
  readonly #retryDelayMs: number;
  /** Aborts every call in flight when the gateway closes. */
  readonly #closing = new AbortController();
  /** The signal of each request in flight, by the id in its CALL_HEADER. */
  readonly #requests = new Map<string, AbortSignal>();
  /** member ID → Customer ID, for the customers this gateway found or made (search lags writes). */
  readonly #customers = new Map<string, string>();
  #nextRequestId = 1;
  #closed = false;

  constructor(options: StripeGatewayOptions) {
    this.#clock = options.clock;
    this.#retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.#stripe = new Stripe(options.apiKey, {
      maxNetworkRetries: 0,
      telemetry: false,
      appInfo: { name: 'hushpay' },
      httpClient: Stripe.createFetchHttpClient(this.#fetch),
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.protocol !== undefined ? { protocol: options.protocol } : {}),
    });
  }

  authorize(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#charge('authorize', request, options);
  }

  sale(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#charge('sale', request, options);
  }

  capture(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('capture', request.orderId, options, async (call) => {
      const intent = await this.#send(call, 'capture', (o) =>
        this.#stripe.paymentIntents.capture(request.transactionRef, { ...(request.amount !== undefined ? { amount_to_capture: request.amount } : {}), expand: ['latest_charge'] }, o),
      );
      return intentOutcome(intent, ['succeeded'], intent.amount_received);
    });
  }

  void(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('void', request.orderId, options, async (call) => {
      const intent = await this.#send(call, 'cancel', (o) => this.#stripe.paymentIntents.cancel(request.transactionRef, { expand: ['latest_charge'] }, o));
      return intentOutcome(intent, ['canceled'], intent.amount);
    });
  }

  refund(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('refund', request.orderId, options, async (call) => {
      const refund = await this.#send(call, 'refund', (o) =>
        this.#stripe.refunds.create({ payment_intent: request.transactionRef, ...(request.amount !== undefined ? { amount: request.amount } : {}) }, o),
      );
      // a card refund is 'succeeded' at once or 'pending' while the network confirms it
      const accepted = refund.status === 'succeeded' || refund.status === 'pending';
      return {
        status: accepted ? 'approved' : 'declined',
        ...(accepted ? {} : { reason: 'card-declined' as const }),
        resultCode: refund.status ?? 'unknown',
        detailCode: refund.failure_reason ?? refund.status ?? '',
        message: accepted ? MESSAGES.approved : MESSAGES['card-declined'],
        transactionRef: request.transactionRef,
        amount: refund.amount,
        currency: refund.currency.toUpperCase(),
      };
    });
  }

  verify(request: VerifyRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('verify', request.orderId, options, async (call) => {
      const method = await this.#paymentMethod(call, request.card);
      const setup = await this.#send(call, 'si', (o) =>
        this.#stripe.setupIntents.create(
          { payment_method: method.id, confirm: true, usage: 'on_session', allowed_payment_method_types: ['card'], payment_method_options: { card: { moto: true } }, metadata: { order_id: request.orderId } },
          o,
        ),
      );
      return setupOutcome(setup, call);
    });
  }

  storeCard(request: StoreCardRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('storeCard', request.memberId, options, async (call) => {
      const method = await this.#paymentMethod(call, request.card);
      const customer = (await this.#findCustomer(call, request.memberId)) ?? (await this.#createCustomer(call, request.memberId));
      const setup = await this.#send(call, 'si', (o) =>
        this.#stripe.setupIntents.create(
          {
            customer: customer.id,
            payment_method: method.id,
            confirm: true,
            usage: 'off_session',
            allowed_payment_method_types: ['card'],
            payment_method_options: { card: { moto: true } },
            metadata: { member_id: request.memberId },
          },
          o,
        ),
      );
      const outcome = setupOutcome(setup, call);
      if (outcome.status !== 'approved') return outcome;
      // the card filed last is the member's default, for chargeStored by member
      await this.#send(call, 'default', (o) => this.#stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: method.id } }, o));
      return { ...outcome, token: method.id };
    });
  }

  async chargeStored(request: ChargeStoredRequest, options: CallOptions): Promise<GatewayResult> {
    if (request.token === undefined && request.memberId === undefined) throw new GatewayRequestError('chargeStored needs a token or a member ID');
    return this.#run('chargeStored', request.orderId, options, async (call) => {
      let customerId: string | undefined;
      let methodId: string;
      if (request.token !== undefined) {
        const method = await this.#send(call, undefined, (o) => this.#stripe.paymentMethods.retrieve(request.token!, {}, o));
        call.card = cardFacts(method.card);
        customerId = idOf(method.customer);
        methodId = method.id;
        if (request.memberId !== undefined) {
          const customer = await this.#findCustomer(call, request.memberId);
          if (customer === undefined || customer.id !== customerId) return missing('The stored card is not filed under that member.');
        }
      } else {
        const customer = await this.#findCustomer(call, request.memberId!);
        if (customer === undefined) return missing('No customer is filed under that member.');
        const defaultMethod = idOf(customer.invoice_settings.default_payment_method);
        if (defaultMethod === undefined) return missing('The member has no default card.');
        customerId = customer.id;
        methodId = defaultMethod;
      }
      const plan = installmentPlan(request.method);
      const intent = await this.#send(call, 'pi', (o) =>
        this.#stripe.paymentIntents.create(
          {
            amount: request.amount,
            currency: request.currency.toLowerCase(),
            ...(customerId !== undefined ? { customer: customerId } : {}),
            payment_method: methodId,
            allowed_payment_method_types: ['card'],
            off_session: true,
            confirm: true,
            capture_method: 'automatic',
            ...(plan ? { payment_method_options: { card: { installments: { plan } } } } : {}),
            metadata: { order_id: request.orderId },
            expand: ['latest_charge'],
          },
          o,
        ),
      );
      return { ...intentOutcome(intent, ['succeeded'], intent.amount, call), token: methodId };
    });
  }

  /** Aborts the calls in flight (they answer error/timeout, detail aborted); later calls throw. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new InvalidStateError('the stripe gateway closed'));
  }

  // -------------------------------------------------------------------------------------------

  #charge(operation: 'authorize' | 'sale', request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run(operation, request.orderId, options, async (call) => {
      const method = await this.#paymentMethod(call, request.card);
      const plan = installmentPlan(request.method);
      const intent = await this.#send(call, 'pi', (o) =>
        this.#stripe.paymentIntents.create(
          {
            amount: request.amount,
            currency: request.currency.toLowerCase(),
            payment_method: method.id,
            allowed_payment_method_types: ['card'],
            confirm: true,
            capture_method: operation === 'authorize' ? 'manual' : 'automatic',
            payment_method_options: { card: { moto: true, ...(plan ? { installments: { plan } } : {}) } },
            metadata: { order_id: request.orderId },
            expand: ['latest_charge'],
          },
          o,
        ),
      );
      return intentOutcome(intent, [operation === 'authorize' ? 'requires_capture' : 'succeeded'], intent.amount, call);
    });
  }

  /** Creates the card's PaymentMethod; the digits are revealed for each attempt's body only. */
  async #paymentMethod(call: Call, card: CardInput): Promise<Stripe.PaymentMethod> {
    call.card = { brand: card.brand, last4: card.pan.lastFour() };
    const method = await this.#send(call, 'pm', (o) =>
      this.#stripe.paymentMethods.create(
        card.pan.reveal((number) => ({
          type: 'card',
          card: {
            number,
            exp_month: card.expiry.month,
            exp_year: card.expiry.year,
            ...(card.securityCode ? card.securityCode.reveal((cvc) => ({ cvc })) : {}),
          },
        })),
        o,
      ),
    );
    call.card = { ...call.card, ...cardFacts(method.card) };
    return method;
  }

  /** The member's Customer: the one this gateway knows of, else found by its metadata. */
  async #findCustomer(call: Call, memberId: string): Promise<Stripe.Customer | undefined> {
    const known = this.#customers.get(memberId);
    if (known !== undefined) {
      const customer = await this.#send(call, undefined, (o) => this.#stripe.customers.retrieve(known, {}, o));
      if (!customer.deleted) return customer;
      this.#customers.delete(memberId);
    }
    // Stripe search syntax: a quoted value, with \ and ' escaped
    const quoted = memberId.replace(/[\\']/g, (c) => `\\${c}`);
    const found = await this.#send(call, undefined, (o) => this.#stripe.customers.search({ query: `metadata['member_id']:'${quoted}'`, limit: 1 }, o));
    const customer = found.data[0];
    if (customer !== undefined) this.#customers.set(memberId, customer.id);
    return customer;
  }

  async #createCustomer(call: Call, memberId: string): Promise<Stripe.Customer> {
    const customer = await this.#send(call, 'customer', (o) => this.#stripe.customers.create({ metadata: { member_id: memberId } }, o));
    this.#customers.set(memberId, customer.id);
    return customer;
  }

  /**
   * One request under the retry rule. `step` names the sub-request's idempotency key
   * (`${key}:${step}`); undefined for a GET, which needs none.
   */
  async #send<T>(call: Call, step: string | undefined, request: (options: Stripe.RequestOptions) => Promise<T>): Promise<T> {
    const { signal } = call.deadline;
    for (let attempt = 1; ; attempt++) {
      const id = String(this.#nextRequestId++);
      this.#requests.set(id, signal);
      try {
        const sent = request({
          maxNetworkRetries: 0,
          timeout: call.timeoutMs,
          headers: { [CALL_HEADER]: id },
          ...(step !== undefined ? { idempotencyKey: `${call.key}:${step}` } : {}),
        });
        return await raceSignal(sent, signal);
      } catch (error) {
        if (signal.aborted || attempt >= MAX_ATTEMPTS || !retryable(error)) throw error;
      } finally {
        this.#requests.delete(id);
      }
      await pause(this.#clock, this.#retryDelayMs * 2 ** (attempt - 1), signal);
      if (signal.aborted) throw signal.reason;
    }
  }

  /**
   * The fetch the package's HTTP client uses: it joins the request to its call's signal, so the
   * deadline aborts the HTTP request itself, and refuses to send for a call that has ended.
   */
  readonly #fetch: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    const id = headers.get(CALL_HEADER);
    headers.delete(CALL_HEADER);
    const callSignal = id !== null ? this.#requests.get(id) : undefined;
    if (id !== null && (callSignal === undefined || callSignal.aborted)) return Promise.reject(new DOMException('the gateway call has ended', 'AbortError'));
    const signals = [init?.signal, callSignal].filter((s): s is AbortSignal => s != null);
    return fetch(input, { ...init, headers, ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}) });
  };

  async #run(operation: GatewayOperation, transactionId: string, options: CallOptions, work: (call: Call) => Promise<Outcome>): Promise<GatewayResult> {
    if (this.#closed) throw new InvalidStateError('the stripe gateway is closed');
    const requestedAt = isoNow(this.#clock);
    const signal = options.signal ? AbortSignal.any([options.signal, this.#closing.signal]) : this.#closing.signal;
    const due = deadline(this.#clock, { ...options, signal });
    const call: Call = { key: options.idempotencyKey, deadline: due, timeoutMs: options.timeoutMs ?? DEFAULT_GATEWAY_TIMEOUT_MS };
    let outcome: Outcome;
    try {
      outcome = await work(call);
    } catch (error) {
      if (due.signal.aborted) outcome = timeoutOutcome(due.timedOut());
      else if (error instanceof Stripe.errors.StripeError) outcome = errorOutcome(error, call);
      else throw error;
    } finally {
      due.dispose();
    }
    return result(this.name, operation, transactionId, requestedAt, isoNow(this.#clock), outcome);
  }
}

// ---------------------------------------------------------------------------------------------
// Stripe's answers → outcomes
// ---------------------------------------------------------------------------------------------

/** A PaymentIntent: approved in the expected states; a decline or an unexpected state else. */
function intentOutcome(intent: Stripe.PaymentIntent, approvedIn: readonly Stripe.PaymentIntent.Status[], amount: number, call?: Call): Outcome {
  const charge = typeof intent.latest_charge === 'object' && intent.latest_charge !== null ? intent.latest_charge : undefined;
  const chargeCard = charge?.payment_method_details?.card ?? undefined;
  const shown = { ...call?.card, ...cardFacts(chargeCard) };
  const common = { transactionRef: intent.id, resultCode: intent.status, brand: shown.brand, last4: shown.last4, amount, currency: intent.currency.toUpperCase() };
  if (approvedIn.includes(intent.status)) {
    return { ...common, status: 'approved', detailCode: intent.status, message: MESSAGES.approved, approvalNumber: chargeCard?.authorization_code ?? undefined };
  }
  const error = intent.last_payment_error;
  if (intent.status === 'requires_payment_method' && error) {
    const reason = declineReason(error.decline_code, error.code);
    return { ...common, status: 'declined', reason, detailCode: error.decline_code ?? error.code ?? '', message: MESSAGES[reason], gatewayErrorCode: error.code, gatewayErrorMessage: scrub(error.message) };
  }
  if (intent.status === 'requires_action') {
    // 3-D Secure or similar: there is no one to authenticate on a telephone order
    return { ...common, status: 'declined', reason: 'card-declined', detailCode: 'authentication_required', message: MESSAGES['card-declined'] };
  }
  return { ...common, status: 'error', reason: 'processing-error', detailCode: intent.status, message: `The payment is ${intent.status.replace(/_/g, ' ')}. Check the order before trying again.` };
}

function setupOutcome(setup: Stripe.SetupIntent, call: Call): Outcome {
  const common = { transactionRef: setup.id, resultCode: setup.status, brand: call.card?.brand, last4: call.card?.last4 };
  if (setup.status === 'succeeded') return { ...common, status: 'approved', detailCode: setup.status, message: MESSAGES.approved };
  const error = setup.last_setup_error;
  if (error) {
    const reason = declineReason(error.decline_code, error.code);
    return { ...common, status: 'declined', reason, detailCode: error.decline_code ?? error.code ?? '', message: MESSAGES[reason], gatewayErrorCode: error.code, gatewayErrorMessage: scrub(error.message) };
  }
  if (setup.status === 'requires_action') return { ...common, status: 'declined', reason: 'card-declined', detailCode: 'authentication_required', message: MESSAGES['card-declined'] };
  return { ...common, status: 'error', reason: 'processing-error', detailCode: setup.status, message: `The card check is ${setup.status.replace(/_/g, ' ')}.` };
}

/** An error the package raised: a decline (402), a refusal, or Stripe or the network failing. */
function errorOutcome(error: StripeError, call: Call): Outcome {
  const type = error.rawType ?? (error instanceof Stripe.errors.StripeConnectionError ? 'connection_error' : 'api_error');
  const gateway = { resultCode: type, gatewayErrorCode: error.code ?? type, gatewayErrorMessage: scrub(error.message) };
  if (error instanceof Stripe.errors.StripeCardError || type === 'card_error') {
    // the package turns a missing decline_code into ''
    const declineCode = error.decline_code || undefined;
    const reason = declineReason(declineCode, error.code);
    const card = { ...call.card, ...cardFacts(error.payment_method?.card) };
    return {
      ...gateway,
      status: 'declined',
      reason,
      detailCode: declineCode ?? error.code ?? '',
      message: MESSAGES[reason],
      transactionRef: error.payment_intent?.id ?? error.setup_intent?.id,
      brand: card.brand,
      last4: card.last4,
    };
  }
  const reason = failureReason(error, type);
  return { ...gateway, status: 'error', reason, detailCode: error.code ?? type, message: MESSAGES[reason], brand: call.card?.brand, last4: call.card?.last4 };
}

/** Why a request that was not a card error failed, in hushpay's words. */
function failureReason(error: StripeError, type: string): DeclineReason {
  const status = error.statusCode;
  if (type === 'idempotency_error' || status === 409) return 'invalid-request';
  if (error instanceof Stripe.errors.StripeConnectionError || error instanceof Stripe.errors.StripeRateLimitError || status === 429) return 'gateway-unavailable';
  // no status: an answer that was not Stripe's JSON (a proxy's error page)
  if (status === undefined) return 'gateway-unavailable';
  if (status >= 500) return type === 'api_error' ? 'processing-error' : 'gateway-unavailable';
  return 'invalid-request';
}

function timeoutOutcome(timedOut: boolean): Outcome {
  return {
    status: 'error',
    reason: 'timeout',
    resultCode: 'timeout',
    detailCode: timedOut ? 'timeout' : 'aborted',
    message: timedOut ? MESSAGES.timeout : 'The payment was stopped before the gateway answered. Check the order before trying again.',
  };
}

/** A chargeStored whose card cannot be found: an invalid request, as Stripe would answer it. */
function missing(message: string): Outcome {
  return { status: 'error', reason: 'invalid-request', resultCode: 'invalid_request_error', detailCode: 'resource_missing', message };
}

/**
 * Whether a failed request may be sent again with the same key: Stripe's own advice when it
 * gives it, else a network failure, 429 or 5xx. Never a card error or an idempotency error.
 */
export function retryable(error: unknown): boolean {
  if (!(error instanceof Stripe.errors.StripeError)) return false;
  if (error instanceof Stripe.errors.StripeCardError || error.rawType === 'card_error' || error.rawType === 'idempotency_error') return false;
  const advice = (error.headers as Record<string, string | undefined> | undefined)?.['stripe-should-retry'];
  if (advice === 'true') return true;
  if (advice === 'false') return false;
  if (error instanceof Stripe.errors.StripeConnectionError) return true;
  const status = error.statusCode;
  // no status: an answer that was not Stripe's JSON, as a proxy in the way would give
  if (status === undefined) return error instanceof Stripe.errors.StripeAPIError;
  return status === 429 || status >= 500;
}

function result(gateway: string, operation: GatewayOperation, transactionId: string, requestedAt: string, respondedAt: string, outcome: Outcome): GatewayResult {
  const out: Record<string, unknown> = { gateway, operation, transactionId, requestedAt, respondedAt };
  for (const [field, value] of Object.entries(outcome)) if (value !== undefined && value !== null) out[field] = value;
  return out as unknown as GatewayResult;
}

function cardFacts(card: { readonly brand?: string | null; readonly last4?: string | null } | null | undefined): { brand?: CardBrand; last4?: string } {
  if (!card) return {};
  const brand = (CARD_BRANDS as readonly (string | null | undefined)[]).includes(card.brand) ? (card.brand as CardBrand) : undefined;
  return { ...(brand ? { brand } : {}), ...(card.last4 ? { last4: card.last4 } : {}) };
}

function idOf(value: string | { readonly id: string } | null | undefined): string | undefined {
  return typeof value === 'string' ? value : (value?.id ?? undefined);
}

/** Stripe's messages carry no card number, but a long run of digits is masked all the same. */
function scrub(message: string | undefined): string | undefined {
  return message?.replace(/\d[\d -]{10,}\d/g, '[digits]');
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts. */
function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {}); // the late answer is ignored
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
