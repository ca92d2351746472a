/**
 * A fake Stripe API on 127.0.0.1, speaking the wire format closely enough for the official
 * `stripe` package: form-encoded bodies in bracket notation (`payment_method_options[card][moto]`),
 * `Authorization: Bearer`, `Idempotency-Key` (the same key and parameters replay the saved answer
 * with `Idempotent-Replayed: true`; other parameters answer 400 idempotency_error; a key still in
 * use answers 409), JSON objects shaped as Stripe's, and errors as
 * `{ error: { type, code, decline_code, message, param, payment_intent, … } }` with 402 for card
 * errors.
 *
 * Outcomes follow Stripe's test numbers (interfaces.md §3.1): 4242424242424242 and the other
 * success numbers approve; 4000000000009995 insufficient_funds; 4000000000000069 expired_card;
 * 4000000000000127 incorrect_cvc; 4000000000009987 lost_card; 4000000000009979 stolen_card;
 * 4000000000000119 processing_error; 4000000000000002 card_declined (generic_decline); a number
 * failing Luhn is incorrect_number when the payment method is created.
 *
 * It insists on what hushpay must send: a PaymentIntent or SetupIntent confirmed without
 * `payment_method_options[card][moto]=true` is refused (unless it is an off-session charge of a
 * stored card), so an approval proves the MOTO flag was on the wire.
 *
 * For tests it can hold a response until released (`hold`), fail the next matching requests
 * (`failNext`: a status before execution — not saved against the key, as Stripe saves only
 * answers of requests that began executing — or a dropped connection), and it records every
 * request with the card number and CVC replaced by a marker of their length: the record proves
 * they were sent without being a place card data rests. Card numbers are looked at once, to pick
 * the card's behaviour, and kept as brand and last four only; the idempotency fingerprint is a
 * keyed hash.
 */

import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Params = { [key: string]: string | Params | Params[] | string[] };

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly idempotencyKey: string | undefined;
  /** The parameters (body or query), card number and CVC replaced by `[card number: N digits]`, `[cvc: N digits]`. */
  readonly params: Params;
  /** Header names as received (lower case), to show what reached the wire. */
  readonly headerNames: readonly string[];
  status?: number;
  replayed?: boolean;
}

export interface Match {
  readonly method?: string;
  readonly path: string | RegExp;
}

export interface Hold {
  /** Resolves when a matching request arrives (and is held). */
  readonly arrived: Promise<void>;
  /** Resolves if the client goes away before the held response is sent. */
  readonly clientGone: Promise<void>;
  release(): void;
}

export interface Failure {
  /** An HTTP status to answer (api_error body), or 'reset' to drop the connection. */
  readonly status: number | 'reset';
  readonly times?: number;
  /** Sets `Stripe-Should-Retry`. */
  readonly shouldRetry?: boolean;
  /** Answer an HTML page, as a proxy in front of Stripe would, instead of Stripe's JSON. */
  readonly html?: boolean;
}

export interface FakeCharge {
  readonly id: string;
  readonly paymentIntent: string;
  readonly amount: number;
  readonly currency: string;
  readonly captured: boolean;
  readonly authorizationCode: string;
  readonly installments: Params | null;
}

type Behaviour = { readonly code: string; readonly declineCode: string; readonly message: string } | 'approve';

const DECLINES: Readonly<Record<string, Behaviour>> = {
  '4000000000009995': { code: 'card_declined', declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.' },
  '4000000000000069': { code: 'expired_card', declineCode: 'expired_card', message: 'Your card has expired.' },
  '4000000000000127': { code: 'incorrect_cvc', declineCode: 'incorrect_cvc', message: "Your card's security code is incorrect." },
  '4000000000009987': { code: 'card_declined', declineCode: 'lost_card', message: 'Your card was declined.' },
  '4000000000009979': { code: 'card_declined', declineCode: 'stolen_card', message: 'Your card was declined.' },
  '4000000000000119': { code: 'processing_error', declineCode: 'processing_error', message: 'An error occurred while processing your card. Try again in a little bit.' },
  '4000000000000002': { code: 'card_declined', declineCode: 'generic_decline', message: 'Your card was declined.' },
};

interface FakePaymentMethod {
  readonly id: string;
  readonly behaviour: Behaviour;
  readonly brand: string;
  readonly last4: string;
  readonly expMonth: number;
  readonly expYear: number;
  customer: string | null;
}

interface FakeIntent {
  readonly id: string;
  readonly amount: number;
  readonly currency: string;
  readonly captureMethod: 'manual' | 'automatic';
  readonly paymentMethod: string;
  readonly customer: string | null;
  readonly metadata: Params;
  readonly paymentMethodOptions: Params;
  status: string;
  amountCapturable: number;
  amountReceived: number;
  refunded: number;
  latestCharge: string | null;
  lastPaymentError: Record<string, unknown> | null;
}

interface FakeCustomer {
  readonly id: string;
  readonly metadata: Params;
  defaultPaymentMethod: string | null;
}

interface Saved {
  readonly fingerprint: string;
  readonly endpoint: string;
  status: number;
  body: unknown;
  done: boolean;
}

/** A response, and whether it is saved against the idempotency key (not for failed validation). */
interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly save: boolean;
}

class ApiError extends Error {
  readonly status: number;
  readonly error: Record<string, unknown>;
  constructor(status: number, error: Record<string, unknown>) {
    super(String(error.message));
    this.status = status;
    this.error = error;
  }
}

const invalid = (message: string, param?: string, code?: string): ApiError => new ApiError(400, { type: 'invalid_request_error', message, ...(param ? { param } : {}), ...(code ? { code } : {}) });

export class FakeStripe {
  readonly requests: SeenRequest[] = [];
  readonly charges: FakeCharge[] = [];
  readonly apiKey: string;
  readonly #server: Server;
  readonly #fingerprintKey = randomBytes(32);
  readonly #saved = new Map<string, Saved>();
  readonly #methods = new Map<string, FakePaymentMethod>();
  readonly #intents = new Map<string, FakeIntent>();
  readonly #chargeObjects = new Map<string, Record<string, unknown>>();
  readonly #setups = new Map<string, Record<string, unknown>>();
  readonly #customers = new Map<string, FakeCustomer>();
  readonly #holds: { match: Match; arrive: () => void; gone: () => void; released: Promise<void>; release: () => void; used: boolean }[] = [];
  readonly #failures: { match: Match; failure: Failure; left: number }[] = [];
  #port = 0;
  #closing: Promise<void> | undefined;

  constructor(options: { apiKey?: string } = {}) {
    this.apiKey = options.apiKey ?? 'sk_test_hushpay_fake';
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        // a bug in the fake: answer as Stripe's own failure would, without detail
        if (!res.headersSent && !res.destroyed) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { type: 'api_error', message: 'fake failure' } }));
      });
    });
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return (this.#closing ??= new Promise<void>((resolve) => {
      for (const h of this.#holds) h.release();
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    }));
  }

  /** Holds the response to the next request matching `match` until `release()`. */
  hold(match: Match): Hold {
    let arrive!: () => void;
    let gone!: () => void;
    let release!: () => void;
    const arrived = new Promise<void>((r) => (arrive = r));
    const clientGone = new Promise<void>((r) => (gone = r));
    const released = new Promise<void>((r) => (release = r));
    this.#holds.push({ match, arrive, gone, released, release, used: false });
    return { arrived, clientGone, release };
  }

  /** Fails the next `times` (default 1) requests matching `match`, before they execute. */
  failNext(match: Match, failure: Failure): void {
    this.#failures.push({ match, failure, left: failure.times ?? 1 });
  }

  /** The requests seen for a method and path. */
  seen(match: Match): SeenRequest[] {
    return this.requests.filter((r) => matches(match, r.method, r.path));
  }

  // -------------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const raw = method === 'GET' || method === 'DELETE' ? url.searchParams : new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const params = parseForm(raw);
    const key = header(req, 'idempotency-key');
    const seen: SeenRequest = { method, path: url.pathname, idempotencyKey: key, params: redacted(params), headerNames: Object.keys(req.headers) };
    this.requests.push(seen);
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableEnded) clientGone = true;
    });
    const send = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      seen.status = status;
      if (clientGone || res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${letters(14)}`, ...(key ? { 'idempotency-key': key } : {}), ...extra });
      res.end(JSON.stringify(body));
    };

    if (header(req, 'authorization') !== `Bearer ${this.apiKey}`) {
      return send(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided.' } });
    }
    const failure = this.#failures.find((f) => f.left > 0 && matches(f.match, method, url.pathname));
    if (failure) {
      failure.left--;
      if (failure.failure.status === 'reset') {
        seen.status = 0;
        req.socket.destroy();
        return;
      }
      const status = failure.failure.status;
      if (failure.failure.html) {
        seen.status = status;
        res.writeHead(status, { 'content-type': 'text/html' }).end('<html><body>Bad Gateway</body></html>');
        return;
      }
      const retryHeader: Record<string, string> = failure.failure.shouldRetry === undefined ? {} : { 'stripe-should-retry': String(failure.failure.shouldRetry) };
      return send(status, { error: status === 429 ? { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests.' } : { type: 'api_error', message: 'An unknown error occurred.' } }, retryHeader);
    }

    const endpoint = `${method} ${url.pathname}`;
    const fingerprint = createHmac('sha256', this.#fingerprintKey).update(endpoint).update(canonical(params)).digest('hex');
    let saved: Saved | undefined;
    if (key !== undefined && method === 'POST') {
      const earlier = this.#saved.get(key);
      if (earlier) {
        if (earlier.endpoint !== endpoint || earlier.fingerprint !== fingerprint) {
          return send(400, { error: { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with.` } });
        }
        if (!earlier.done) {
          return send(409, { error: { type: 'idempotency_error', message: 'There is currently another in-progress request using this Stripe API key and idempotency key.' } });
        }
        seen.replayed = true;
        return send(earlier.status, earlier.body, { 'idempotent-replayed': 'true' });
      }
      saved = { fingerprint, endpoint, status: 0, body: null, done: false };
      this.#saved.set(key, saved);
    }

    const hold = this.#holds.find((h) => !h.used && matches(h.match, method, url.pathname));
    if (hold) {
      hold.used = true;
      res.on('close', () => {
        if (!res.writableEnded) hold.gone();
      });
      hold.arrive();
      await hold.released;
    }

    let answer: Answer;
    try {
      answer = this.#route(method, url.pathname, params);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      answer = { status: error.status, body: { error: error.error }, save: error.status !== 400 };
    }
    if (saved) {
      if (answer.save) Object.assign(saved, { status: answer.status, body: answer.body, done: true });
      else if (key !== undefined) this.#saved.delete(key);
    }
    send(answer.status, answer.body);
  }

  #route(method: string, path: string, p: Params): Answer {
    const ok = (body: unknown): Answer => ({ status: 200, body, save: true });
    const parts = path.split('/').filter(Boolean); // v1, resource, id, action
    if (parts[0] !== 'v1') throw new ApiError(404, { type: 'invalid_request_error', message: 'Unrecognized request URL.' });
    const [, resource, id, action] = parts;
    if (method === 'POST' && resource === 'payment_methods' && !id) return ok(this.#createMethod(p));
    if (method === 'GET' && resource === 'payment_methods' && id) return ok(this.#methodObject(this.#method(id, 'id')));
    if (method === 'POST' && resource === 'payment_intents' && !id) return this.#createIntent(p);
    if (method === 'POST' && resource === 'payment_intents' && id && action === 'capture') return ok(this.#capture(id, p));
    if (method === 'POST' && resource === 'payment_intents' && id && action === 'cancel') return ok(this.#cancel(id, p));
    if (method === 'POST' && resource === 'refunds' && !id) return ok(this.#refund(p));
    if (method === 'POST' && resource === 'setup_intents' && !id) return this.#createSetup(p);
    if (method === 'GET' && resource === 'customers' && id === 'search') return ok(this.#searchCustomers(p));
    if (method === 'POST' && resource === 'customers' && !id) return ok(this.#createCustomer(p));
    if (method === 'GET' && resource === 'customers' && id) return ok(this.#customerObject(this.#customer(id)));
    if (method === 'POST' && resource === 'customers' && id && !action) return ok(this.#updateCustomer(id, p));
    throw new ApiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}).` });
  }

  // payment methods -----------------------------------------------------------------------------

  #createMethod(p: Params): Record<string, unknown> {
    if (p.type !== 'card') throw invalid('Only type card is supported here.', 'type');
    const card = asParams(p.card);
    const number = card?.number;
    if (typeof number !== 'string' || !/^\d{12,19}$/.test(number)) throw invalid('Missing or malformed card number.', 'card[number]', 'parameter_missing');
    const expMonth = Number(card?.exp_month);
    const expYear = Number(card?.exp_year);
    if (!Number.isInteger(expMonth) || expMonth < 1 || expMonth > 12) throw cardError('invalid_expiry_month', "Your card's expiration month is invalid.", 'card[exp_month]');
    const now = new Date();
    if (!Number.isInteger(expYear) || expYear * 12 + expMonth < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1) throw cardError('invalid_expiry_year', "Your card's expiration year is invalid.", 'card[exp_year]');
    if (!luhn(number)) throw cardError('incorrect_number', 'Your card number is incorrect.', 'card[number]');
    const pm: FakePaymentMethod = { id: `pm_${letters(24)}`, behaviour: DECLINES[number] ?? 'approve', brand: brandOf(number), last4: number.slice(-4), expMonth, expYear, customer: null };
    this.#methods.set(pm.id, pm);
    return this.#methodObject(pm);
  }

  #method(id: unknown, param: string): FakePaymentMethod {
    const pm = typeof id === 'string' ? this.#methods.get(id) : undefined;
    if (!pm) throw new ApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param, message: 'No such PaymentMethod.' });
    return pm;
  }

  #methodObject(pm: FakePaymentMethod): Record<string, unknown> {
    return {
      id: pm.id,
      object: 'payment_method',
      type: 'card',
      card: { brand: pm.brand, last4: pm.last4, exp_month: pm.expMonth, exp_year: pm.expYear, funding: 'credit', country: 'JP', checks: { cvc_check: null } },
      customer: pm.customer,
      livemode: false,
      metadata: {},
    };
  }

  // payment intents -----------------------------------------------------------------------------

  #createIntent(p: Params): Answer {
    const amount = Number(p.amount);
    if (!Number.isInteger(amount) || amount <= 0) throw invalid('Invalid positive integer.', 'amount');
    if (typeof p.currency !== 'string' || !/^[a-z]{3}$/.test(p.currency)) throw invalid('Invalid currency: the code is three lower-case letters.', 'currency');
    const pm = this.#method(p.payment_method, 'payment_method');
    const customer = typeof p.customer === 'string' ? this.#customer(p.customer).id : null;
    if (pm.customer !== null && pm.customer !== customer) throw invalid('The provided PaymentMethod was previously attached to a Customer; pass that Customer.', 'customer');
    const options = asParams(p.payment_method_options) ?? {};
    const cardOptions = asParams(options.card) ?? {};
    const offSession = p.off_session === 'true';
    if (p.confirm === 'true' && cardOptions.moto !== 'true' && !(offSession && customer !== null)) {
      throw invalid('This fake takes telephone orders only: payment_method_options[card][moto] must be true.', 'payment_method_options[card][moto]', 'parameter_missing');
    }
    const installments = asParams(cardOptions.installments);
    const plan = asParams(installments?.plan);
    if (installments) {
      if (p.currency !== 'jpy') throw invalid('Installments are for JPY payments.', 'payment_method_options[card][installments]');
      if (!plan || !['fixed_count', 'bonus', 'revolving'].includes(String(plan.type))) throw invalid('Invalid installment plan type.', 'payment_method_options[card][installments][plan][type]');
      if (plan.type === 'fixed_count' && (!Number.isInteger(Number(plan.count)) || Number(plan.count) < 2 || plan.interval !== 'month')) throw invalid('A fixed_count plan needs a count and interval month.', 'payment_method_options[card][installments][plan]');
      if (plan.type !== 'fixed_count' && (plan.count !== undefined || plan.interval !== undefined)) throw invalid('Only a fixed_count plan has a count.', 'payment_method_options[card][installments][plan][count]');
    }
    const captureMethod = p.capture_method === 'manual' ? 'manual' : 'automatic';
    const intent: FakeIntent = {
      id: `pi_${letters(24)}`,
      amount,
      currency: p.currency,
      captureMethod,
      paymentMethod: pm.id,
      customer,
      metadata: asParams(p.metadata) ?? {},
      paymentMethodOptions: options,
      status: 'requires_confirmation',
      amountCapturable: 0,
      amountReceived: 0,
      refunded: 0,
      latestCharge: null,
      lastPaymentError: null,
    };
    this.#intents.set(intent.id, intent);
    const expand = expanded(p);
    if (p.confirm !== 'true') return { status: 200, body: this.#intentObject(intent, expand), save: true };

    const chargeId = `ch_${letters(24)}`;
    intent.latestCharge = chargeId;
    const approved = pm.behaviour === 'approve';
    const authorizationCode = letters(6).toUpperCase();
    this.#chargeObjects.set(chargeId, {
      id: chargeId,
      object: 'charge',
      amount,
      currency: intent.currency,
      payment_intent: intent.id,
      status: approved ? 'succeeded' : 'failed',
      captured: approved && captureMethod === 'automatic',
      payment_method: pm.id,
      payment_method_details: { type: 'card', card: { brand: pm.brand, last4: pm.last4, exp_month: pm.expMonth, exp_year: pm.expYear, authorization_code: approved ? authorizationCode : null, installments: plan ? { plan } : null } },
    });
    if (pm.behaviour === 'approve') {
      this.charges.push({ id: chargeId, paymentIntent: intent.id, amount, currency: intent.currency, captured: captureMethod === 'automatic', authorizationCode, installments: plan ?? null });
      if (captureMethod === 'manual') {
        intent.status = 'requires_capture';
        intent.amountCapturable = amount;
      } else {
        intent.status = 'succeeded';
        intent.amountReceived = amount;
      }
      return { status: 200, body: this.#intentObject(intent, expand), save: true };
    }
    const error = { type: 'card_error', code: pm.behaviour.code, decline_code: pm.behaviour.declineCode, message: pm.behaviour.message, charge: chargeId, doc_url: `https://docs.stripe.com/error-codes/${pm.behaviour.code.replace(/_/g, '-')}` };
    intent.status = 'requires_payment_method';
    intent.lastPaymentError = { ...error, payment_method: this.#methodObject(pm) };
    return { status: 402, body: { error: { ...error, payment_intent: this.#intentObject(intent, []), payment_method: this.#methodObject(pm) } }, save: true };
  }

  #intent(id: string): FakeIntent {
    const intent = this.#intents.get(id);
    if (!intent) throw new ApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: 'No such payment_intent.' });
    return intent;
  }

  #intentObject(intent: FakeIntent, expand: readonly string[]): Record<string, unknown> {
    const charge = intent.latestCharge !== null && expand.includes('latest_charge') ? (this.#chargeObjects.get(intent.latestCharge) ?? intent.latestCharge) : intent.latestCharge;
    return {
      id: intent.id,
      object: 'payment_intent',
      amount: intent.amount,
      amount_capturable: intent.amountCapturable,
      amount_received: intent.amountReceived,
      currency: intent.currency,
      capture_method: intent.captureMethod,
      customer: intent.customer,
      payment_method: intent.paymentMethod,
      payment_method_options: intent.paymentMethodOptions,
      status: intent.status,
      latest_charge: charge,
      last_payment_error: intent.lastPaymentError,
      metadata: intent.metadata,
      livemode: false,
    };
  }

  #capture(id: string, p: Params): Record<string, unknown> {
    const intent = this.#intent(id);
    if (intent.status !== 'requires_capture') throw invalid(`This PaymentIntent could not be captured because it has a status of ${intent.status}.`, undefined, 'payment_intent_unexpected_state');
    const amount = p.amount_to_capture !== undefined ? Number(p.amount_to_capture) : intent.amountCapturable;
    if (!Number.isInteger(amount) || amount <= 0 || amount > intent.amountCapturable) throw invalid('The amount to capture is more than the amount capturable.', 'amount_to_capture', 'amount_too_large');
    intent.status = 'succeeded';
    intent.amountReceived = amount;
    intent.amountCapturable = 0;
    const charge = intent.latestCharge !== null ? this.#chargeObjects.get(intent.latestCharge) : undefined;
    if (charge) Object.assign(charge, { captured: true, amount_captured: amount });
    return this.#intentObject(intent, expanded(p));
  }

  #cancel(id: string, p: Params): Record<string, unknown> {
    const intent = this.#intent(id);
    if (!['requires_capture', 'requires_payment_method', 'requires_confirmation', 'requires_action'].includes(intent.status)) {
      throw invalid(`You cannot cancel this PaymentIntent because it has a status of ${intent.status}.`, undefined, 'payment_intent_unexpected_state');
    }
    intent.status = 'canceled';
    intent.amountCapturable = 0;
    return this.#intentObject(intent, expanded(p));
  }

  #refund(p: Params): Record<string, unknown> {
    if (typeof p.payment_intent !== 'string') throw invalid('Pass a payment_intent.', 'payment_intent', 'parameter_missing');
    const intent = this.#intent(p.payment_intent);
    if (intent.status !== 'succeeded') throw invalid('This PaymentIntent has no captured charge to refund.', 'payment_intent', 'charge_not_refundable');
    const amount = p.amount !== undefined ? Number(p.amount) : intent.amountReceived - intent.refunded;
    if (!Number.isInteger(amount) || amount <= 0 || intent.refunded + amount > intent.amountReceived) throw invalid('The refund is more than what remains of the charge.', 'amount', 'amount_too_large');
    intent.refunded += amount;
    return { id: `re_${letters(24)}`, object: 'refund', amount, currency: intent.currency, payment_intent: intent.id, charge: intent.latestCharge, status: 'succeeded', failure_reason: null };
  }

  // setup intents and customers -----------------------------------------------------------------

  #createSetup(p: Params): Answer {
    const pm = this.#method(p.payment_method, 'payment_method');
    const customer = typeof p.customer === 'string' ? this.#customer(p.customer) : undefined;
    const cardOptions = asParams(asParams(p.payment_method_options)?.card) ?? {};
    if (p.confirm === 'true' && cardOptions.moto !== 'true') throw invalid('This fake takes telephone orders only: payment_method_options[card][moto] must be true.', 'payment_method_options[card][moto]', 'parameter_missing');
    if (pm.customer !== null && customer !== undefined && pm.customer !== customer.id) throw invalid('The PaymentMethod is attached to another Customer.', 'payment_method');
    const setup: Record<string, unknown> = {
      id: `seti_${letters(24)}`,
      object: 'setup_intent',
      customer: customer?.id ?? null,
      payment_method: pm.id,
      usage: typeof p.usage === 'string' ? p.usage : 'off_session',
      metadata: asParams(p.metadata) ?? {},
      status: p.confirm === 'true' ? 'succeeded' : 'requires_confirmation',
      last_setup_error: null,
    };
    this.#setups.set(String(setup.id), setup);
    if (p.confirm === 'true' && pm.behaviour !== 'approve') {
      const error = { type: 'card_error', code: pm.behaviour.code, decline_code: pm.behaviour.declineCode, message: pm.behaviour.message };
      Object.assign(setup, { status: 'requires_payment_method', last_setup_error: error });
      return { status: 402, body: { error: { ...error, setup_intent: setup, payment_method: this.#methodObject(pm) } }, save: true };
    }
    if (p.confirm === 'true' && customer) pm.customer = customer.id;
    return { status: 200, body: setup, save: true };
  }

  #customer(id: string): FakeCustomer {
    const customer = this.#customers.get(id);
    if (!customer) throw new ApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'customer', message: 'No such customer.' });
    return customer;
  }

  #customerObject(c: FakeCustomer): Record<string, unknown> {
    return { id: c.id, object: 'customer', metadata: c.metadata, invoice_settings: { default_payment_method: c.defaultPaymentMethod }, livemode: false };
  }

  #createCustomer(p: Params): Record<string, unknown> {
    const customer: FakeCustomer = { id: `cus_${letters(14)}`, metadata: asParams(p.metadata) ?? {}, defaultPaymentMethod: null };
    this.#customers.set(customer.id, customer);
    return this.#customerObject(customer);
  }

  #updateCustomer(id: string, p: Params): Record<string, unknown> {
    const customer = this.#customer(id);
    const wanted = asParams(p.invoice_settings)?.default_payment_method;
    if (typeof wanted === 'string') {
      if (this.#method(wanted, 'invoice_settings[default_payment_method]').customer !== customer.id) throw invalid('The PaymentMethod is not attached to this Customer.', 'invoice_settings[default_payment_method]');
      customer.defaultPaymentMethod = wanted;
    }
    return this.#customerObject(customer);
  }

  /** Stripe search, the one form hushpay sends: `metadata['key']:'value'` (with \\ and \' escapes). */
  #searchCustomers(p: Params): Record<string, unknown> {
    const query = typeof p.query === 'string' ? p.query : '';
    const m = /^metadata\['([a-z_]+)'\]:'((?:[^'\\]|\\.)*)'$/.exec(query);
    if (!m) throw invalid('This fake searches metadata only.', 'query');
    const [, field, quoted] = m;
    const value = quoted!.replace(/\\(.)/g, '$1');
    const data = [...this.#customers.values()].filter((c) => c.metadata[field!] === value).map((c) => this.#customerObject(c));
    return { object: 'search_result', url: '/v1/customers/search', has_more: false, next_page: null, data };
  }
}

// ---------------------------------------------------------------------------------------------

function cardError(code: string, message: string, param: string): ApiError {
  return new ApiError(402, { type: 'card_error', code, message, param });
}

function matches(match: Match, method: string, path: string): boolean {
  if (match.method !== undefined && match.method !== method) return false;
  return typeof match.path === 'string' ? match.path === path : match.path.test(path);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `a[b][c]=v` → `{ a: { b: { c: 'v' } } }`; all-numeric keys become arrays. */
export function parseForm(form: URLSearchParams): Params {
  const root: Params = {};
  for (const [name, value] of form) {
    const keys = [name.replace(/\[.*$/, ''), ...[...name.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]!)];
    let node: Params = root;
    keys.forEach((k, i) => {
      if (i === keys.length - 1) node[k] = value;
      else {
        const next = node[k];
        node = typeof next === 'object' && !Array.isArray(next) ? next : (node[k] = {});
      }
    });
  }
  return arrays(root) as Params;
}

function arrays(node: Params | string): Params | string | Params[] | string[] {
  if (typeof node === 'string') return node;
  const keys = Object.keys(node);
  const converted = Object.fromEntries(keys.map((k) => [k, arrays(node[k] as Params | string)]));
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) return keys.sort((a, b) => Number(a) - Number(b)).map((k) => converted[k]) as Params[] | string[];
  return converted as Params;
}

/** The parameters with card number and CVC replaced by their length. */
function redacted(params: Params): Params {
  const card = asParams(params.card);
  if (!card) return params;
  const masked: Params = { ...card };
  if (typeof card.number === 'string') masked.number = `[card number: ${card.number.length} digits]`;
  if (typeof card.cvc === 'string') masked.cvc = `[cvc: ${card.cvc.length} digits]`;
  return { ...params, card: masked };
}

function asParams(value: unknown): Params | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Params) : undefined;
}

function expanded(p: Params): string[] {
  return Array.isArray(p.expand) ? p.expand.filter((e): e is string => typeof e === 'string') : [];
}

function canonical(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

function luhn(number: string): boolean {
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let d = Number(number[number.length - 1 - i]);
    if (i % 2 === 1 && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

function brandOf(number: string): string {
  const p2 = Number(number.slice(0, 2));
  const p4 = Number(number.slice(0, 4));
  if (number.startsWith('4')) return 'visa';
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return 'mastercard';
  if (p2 === 34 || p2 === 37) return 'amex';
  if (p4 >= 3528 && p4 <= 3589) return 'jcb';
  if (p2 === 30 || p2 === 36 || p2 === 38 || p2 === 39) return 'diners';
  if (p4 === 6011 || p2 === 65) return 'discover';
  if (p2 === 62) return 'unionpay';
  return 'unknown';
}

/** Random lower-case letters: object IDs with no digits, so a digit search over the record finds card data only. */
function letters(count: number): string {
  return Array.from(randomBytes(count), (b) => String.fromCharCode(97 + (b % 26))).join('');
}
