/**
 * The desk: what the API, the event stream and webhooks stand on. It follows the live calls,
 * starts and steers payments on them for whoever may, records each payment (never card data),
 * and turns every call and payment event into one numbered, stored event — to the agents who
 * may see it, and to the tenant's webhooks.
 *
 * Who may see what: an admin everything; a supervisor, and an API key, their tenant's calls;
 * an agent the calls assigned to them (they claim a call by its id — the PBX's screen pop
 * carries X-Hushpay-Call-Id — or a supervisor assigns it).
 */

import { randomBytes } from 'node:crypto';
import type { CaptureField } from '../../flows/capture.machine.ts';
import type { B2bua } from '../calls/b2bua.ts';
import type { Call, CallEnd } from '../calls/call.ts';
import type { Clock } from '../clock.ts';
import { TypedEmitter } from '../events.ts';
import type { Logger } from '../log.ts';
import type { PaymentMethod } from '../payments/gateway.ts';
import type { PaymentEvent, PaymentOperation, PublicResult } from '../payments/session.ts';
import { holdsCardNumber } from '../payments/card.ts';
import type { PaymentRecord, PaymentStatus } from '../store/payments.ts';

export type Role = 'agent' | 'supervisor' | 'admin';

export type Principal =
  | { readonly kind: 'user'; readonly userId: string; readonly username: string; readonly role: Role; readonly tenantId: string | null }
  | { readonly kind: 'apiKey'; readonly keyId: string; readonly tenantId: string };

/** For the audit log: who did it and from where. */
export interface Actor {
  readonly principal: Principal;
  readonly origin: string;
}

export type { PaymentRecord, PaymentStatus };

/** What the desk needs of the store (src/store/ provides it). */
export interface DeskStore {
  /** Runs `fn` as one write: everything it stores, or nothing. */
  transaction<T>(fn: () => T): T;
  readonly users: { get(id: string): { readonly tenantId: string | null; readonly disabled: boolean } | undefined };
  readonly payments: {
    create(p: { id: string; tenantId: string; callId: string; agentUserId: string | null; operation: PaymentOperation; amount?: { value: number; currency: string }; method?: PaymentMethod; orderId: string; idempotencyKey: string; fields: string[]; statusCallback?: string }): PaymentRecord;
    get(id: string): PaymentRecord | undefined;
    byIdempotencyKey(tenantId: string, key: string): PaymentRecord | undefined;
    update(id: string, changes: { status?: PaymentStatus; brand?: string; last4?: string; progress?: Record<string, unknown>; result?: PublicResult; failure?: string; error?: string }): PaymentRecord | undefined;
    list(q: { tenantId?: string; agentUserId?: string; from?: string; to?: string; status?: string; limit?: number; offset?: number }): PaymentRecord[];
    csv(rows: readonly PaymentRecord[], options?: { header?: 'en' | 'ja' }): string;
  };
  readonly events: {
    append(e: { tenantId: string; callId: string; agentUserId: string | null; paymentId: string | null; type: string; payload: object }): { id: number; at: string };
    lastId(): number;
    after(id: number, q: { tenantId?: string; agentUserId?: string; limit: number }): { id: number; at: string; tenantId: string; callId: string; agentUserId: string | null; paymentId: string | null; type: string; payload: object }[];
  };
  readonly audit: {
    append(e: { actorType: 'user' | 'apiKey' | 'system'; actorId: string; tenantId: string | null; action: string; resource: string; outcome: 'success' | 'failure'; origin: string; details?: object }): unknown;
  };
  readonly webhooks: {
    enqueue(m: { tenantId: string; type: string; payload: object; url?: string }): { id: string };
  };
}

/** An event as the stream and webhooks carry it. */
export interface DeskEvent {
  readonly id: number;
  readonly at: string;
  readonly type: string;
  readonly tenantId: string;
  readonly callId: string;
  readonly paymentId: string | null;
  /** Whose desk it belongs on (the call's agent when it happened), for the stream's filter. */
  readonly agentUserId: string | null;
  readonly data: object;
}

export interface CallView {
  readonly id: string;
  readonly tenantId: string;
  readonly state: string;
  /** The caller's number with all but the last four digits hidden. */
  readonly caller: string | null;
  readonly called: string | null;
  readonly startedAt: string;
  readonly agentUserId: string | null;
  readonly paymentId: string | null;
}

export class DeskError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'DeskError';
    this.status = status;
    this.code = code;
  }
}

export interface StartPaymentBody {
  readonly idempotencyKey: string;
  readonly operation: PaymentOperation;
  readonly amount?: number;
  readonly currency?: string;
  readonly method?: PaymentMethod;
  readonly fields?: readonly CaptureField[];
  readonly memberId?: string;
  readonly orderId?: string;
  /** Also POST this payment's events here (signed with the tenant's webhook secret). */
  readonly statusCallback?: string;
}

export interface UpdatePaymentBody {
  readonly capture?: CaptureField;
  readonly status?: 'complete' | 'cancel';
  readonly method?: PaymentMethod;
}

interface LiveCall {
  readonly call: Call;
  agentUserId: string | null;
  paymentId: string | null;
}

/** Which event types a tenant's webhooks get (capture.progress is left out unless asked for). */
export type WebhookFilter = (tenantId: string, type: string) => boolean;

interface DeskEvents extends Record<string, unknown[]> {
  event: [DeskEvent];
  /** A webhook message (the tenant's, or a payment's status callback) was queued: deliver it now. */
  queued: [];
}

const FINAL_STATUSES: ReadonlySet<PaymentStatus> = new Set(['approved', 'declined', 'error', 'failed', 'cancelled', 'refused']);

const STATUS_OF: Partial<Record<PaymentEvent['type'], PaymentStatus>> = {
  'payment.ready': 'ready',
  'payment.authorizing': 'authorizing',
  'payment.cancelled': 'cancelled',
};

export class Desk extends TypedEmitter<DeskEvents> {
  readonly #b2bua: B2bua;
  readonly #store: DeskStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #webhooks: WebhookFilter;
  readonly #callbackOrigin: (tenantId: string) => string | undefined;
  readonly #live = new Map<string, LiveCall>();
  readonly #onCall = (call: Call): void => this.#follow(call);

  /**
   * `webhooks`: which events go to a tenant's webhook endpoint. `callbackOrigin`: the origin a
   * tenant's status callbacks must be on — its webhook endpoint's, whose secret signs them.
   * Without webhooks a payment asking for a callback is refused (an unsigned callback could be
   * forged by anyone), and a callback elsewhere too (hushpay would POST wherever an API caller
   * asked: into the contact centre's own network).
   */
  constructor(options: { b2bua: B2bua; store: DeskStore; clock: Clock; logger: Logger; webhooks?: WebhookFilter; callbackOrigin?: (tenantId: string) => string | undefined }) {
    super();
    this.#b2bua = options.b2bua;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#webhooks = options.webhooks ?? (() => false);
    this.#callbackOrigin = options.callbackOrigin ?? (() => undefined);
    this.#b2bua.on('call', this.#onCall);
    for (const call of this.#b2bua.calls.values()) this.#follow(call);
  }

  // -------------------------------------------------------------------------------------------
  // who may see what
  // -------------------------------------------------------------------------------------------

  /** Whether a principal may see something of this tenant and, for an agent, this agent's. */
  canSee(p: Principal, tenantId: string, agentUserId: string | null): boolean {
    if (p.kind === 'apiKey') return p.tenantId === tenantId;
    if (p.role === 'admin') return true;
    if (p.tenantId !== tenantId) return false;
    return p.role === 'supervisor' || agentUserId === p.userId;
  }

  #liveFor(p: Principal, callId: string): LiveCall {
    const live = this.#live.get(callId);
    if (!live || !this.#canSeeCall(p, live)) throw new DeskError(404, 'call_not_found', 'no live call with that id that you may see');
    return live;
  }

  #canSeeCall(p: Principal, live: LiveCall): boolean {
    return this.canSee(p, live.call.tenant.id, live.agentUserId);
  }

  // -------------------------------------------------------------------------------------------
  // calls
  // -------------------------------------------------------------------------------------------

  calls(p: Principal): CallView[] {
    return [...this.#live.values()].filter((l) => this.#canSeeCall(p, l)).map((l) => this.#view(l));
  }

  /** An agent takes a call of their tenant by its id (from the PBX's screen pop). */
  claim(actor: Actor, callId: string): CallView {
    const p = actor.principal;
    const live = this.#live.get(callId);
    if (!live || p.kind !== 'user' || (p.role !== 'admin' && p.tenantId !== live.call.tenant.id)) throw new DeskError(404, 'call_not_found', 'no live call with that id that you may see');
    if (live.agentUserId !== null && live.agentUserId !== p.userId && p.role === 'agent') throw new DeskError(409, 'call_taken', 'another agent has this call');
    this.#assign(actor, live, p.userId);
    return this.#view(live);
  }

  /** A supervisor, admin or integration puts a call on an agent's desk. */
  assign(actor: Actor, callId: string, userId: string): CallView {
    const p = actor.principal;
    if (p.kind === 'user' && p.role === 'agent') throw new DeskError(403, 'forbidden', 'agents claim calls; they do not assign them');
    const live = this.#liveFor(p, callId);
    // the payment's agent is who may steer it: it does not change hands mid-payment
    if (live.call.payments?.activePaymentId !== undefined && live.agentUserId !== userId) throw new DeskError(409, 'payment_in_progress', 'a payment is running on this call; assign it after the payment ends');
    const target = this.#store.users.get(userId);
    if (!target || target.disabled || target.tenantId !== live.call.tenant.id) throw new DeskError(422, 'user_not_found', "no such user in the call's tenant");
    this.#assign(actor, live, userId);
    return this.#view(live);
  }

  #assign(actor: Actor, live: LiveCall, userId: string): void {
    live.agentUserId = userId;
    this.#audit(actor, live.call.tenant.id, 'call.assign', `call:${live.call.id}`, 'success', { agentUserId: userId });
    this.#publish(live, null, 'call.assigned', { agentUserId: userId });
  }

  #view(l: LiveCall): CallView {
    const caller = l.call.callerNumber;
    return {
      id: l.call.id,
      tenantId: l.call.tenant.id,
      state: l.call.state,
      caller: caller ? caller.replace(/.(?=.{4})/g, '•') : null,
      called: l.call.calledNumber ?? null,
      startedAt: new Date(l.call.startedAtWallMs).toISOString(),
      agentUserId: l.agentUserId,
      paymentId: l.paymentId,
    };
  }

  // -------------------------------------------------------------------------------------------
  // payments
  // -------------------------------------------------------------------------------------------

  startPayment(actor: Actor, callId: string, body: StartPaymentBody): { record: PaymentRecord; created: boolean } {
    const p = actor.principal;
    const live = this.#liveFor(p, callId);
    const tenantId = live.call.tenant.id;
    const earlier = this.#store.payments.byIdempotencyKey(tenantId, body.idempotencyKey);
    if (earlier) {
      if (earlier.callId !== callId) throw new DeskError(409, 'idempotency_conflict', 'that idempotency key started a payment on another call');
      return { record: earlier, created: false };
    }
    const payments = live.call.payments;
    if (!payments || live.call.state !== 'active') throw new DeskError(409, 'call_not_active', 'the call is not connected');
    if ((body.operation === 'sale' || body.operation === 'authorize') && (body.amount === undefined || body.currency === undefined)) {
      throw new DeskError(422, 'amount_required', 'a sale or authorization needs amount and currency');
    }
    if (body.statusCallback !== undefined) {
      const origin = this.#callbackOrigin(tenantId);
      if (origin === undefined) throw new DeskError(422, 'status_callback_unsigned', "a status callback is signed with the tenant's webhook secret: configure the tenant's webhooks first");
      let asked: string | undefined;
      try {
        asked = new URL(body.statusCallback).origin;
      } catch {
        asked = undefined;
      }
      if (asked !== origin) throw new DeskError(422, 'status_callback_not_allowed', `a status callback must be on the tenant's webhook origin, ${origin}`);
    }
    // a merchant's own fields are echoed everywhere (records, CSV, events, the gateway): a card
    // number pasted into one must not ride along
    for (const [field, value] of [['idempotencyKey', body.idempotencyKey], ['orderId', body.orderId], ['memberId', body.memberId]] as const) {
      if (value !== undefined && holdsCardNumber(value)) throw new DeskError(422, 'card_number_in_field', `${field} looks like a card number; card numbers are keyed by the caller, never sent`);
    }
    const id = `pay_${randomBytes(12).toString('hex')}`;
    const request = {
      paymentId: id,
      idempotencyKey: `${tenantId}:${body.idempotencyKey}`,
      operation: body.operation,
      ...(body.amount !== undefined && body.currency !== undefined ? { amount: { value: body.amount, currency: body.currency.toUpperCase() } } : {}),
      ...(body.method ? { method: body.method } : {}),
      ...(body.fields ? { fields: body.fields } : {}),
      ...(body.memberId ? { memberId: body.memberId } : {}),
      ...(body.orderId ? { orderId: body.orderId } : {}),
    };
    // the record first: the session's first events (started, the first prompt) update it
    const record = this.#store.payments.create({
      id,
      tenantId,
      callId,
      agentUserId: live.agentUserId,
      operation: body.operation,
      ...(request.amount ? { amount: request.amount } : {}),
      ...(body.method ? { method: body.method } : {}),
      orderId: body.orderId ?? id,
      idempotencyKey: body.idempotencyKey,
      fields: [...(body.fields ?? live.call.tenant.payments.fields)],
      ...(body.statusCallback !== undefined ? { statusCallback: body.statusCallback } : {}),
    });
    const running = live.paymentId;
    live.paymentId = id;
    const started = payments.start(request);
    if (!started.ok) {
      this.#store.payments.update(id, { status: 'refused', failure: started.reason });
      // a refusal leaves the payment that was running (if any) as the call's
      live.paymentId = running;
      this.#audit(actor, tenantId, 'payment.start', `payment:${id}`, 'failure', { reason: started.reason });
      const status = started.reason === 'payment-in-progress' ? 409 : started.reason === 'invalid-request' ? 422 : 429;
      throw new DeskError(status, started.reason.replace(/-/g, '_'), started.message);
    }
    this.#audit(actor, tenantId, 'payment.start', `payment:${id}`, 'success', { operation: body.operation, ...(request.amount ? { amount: request.amount.value, currency: request.amount.currency } : {}) });
    return { record: this.#store.payments.get(id) ?? record, created: true };
  }

  updatePayment(actor: Actor, paymentId: string, body: UpdatePaymentBody): PaymentRecord {
    const record = this.getPayment(actor.principal, paymentId);
    const live = this.#live.get(record.callId);
    const session = live?.call.payments;
    const active = session?.activePaymentId === paymentId;
    const fail = (code: string, message: string): never => {
      this.#audit(actor, record.tenantId, 'payment.update', `payment:${paymentId}`, 'failure', { code });
      throw new DeskError(409, code, message);
    };
    if (!active || !session) fail('payment_not_active', `the payment is ${record.status}; it can no longer be changed`);
    // everything is checked before anything is changed: a refused request changes nothing
    if (body.capture && !record.fields.includes(body.capture)) throw new DeskError(422, 'field_not_captured', `this payment does not capture ${body.capture}`);
    if (body.status === 'complete' && (record.status !== 'ready' || body.capture)) fail('payment_not_ready', 'the caller has not finished keying');
    if (body.method) session!.setMethod(body.method);
    if (body.capture) session!.recapture(body.capture);
    if (body.status === 'complete') session!.submit();
    if (body.status === 'cancel') session!.cancel();
    this.#audit(actor, record.tenantId, 'payment.update', `payment:${paymentId}`, 'success', { ...(body.capture ? { capture: body.capture } : {}), ...(body.status ? { status: body.status } : {}), ...(body.method ? { method: body.method.kind } : {}) });
    return this.#store.payments.get(paymentId)!;
  }

  getPayment(p: Principal, paymentId: string): PaymentRecord {
    const record = this.#store.payments.get(paymentId);
    if (!record || !this.canSee(p, record.tenantId, record.agentUserId)) throw new DeskError(404, 'payment_not_found', 'no payment with that id that you may see');
    return record;
  }

  listPayments(p: Principal, q: { from?: string; to?: string; status?: string; limit?: number; offset?: number }): PaymentRecord[] {
    if (p.kind === 'user' && p.role === 'admin') return this.#store.payments.list(q);
    const tenantId = p.tenantId!;
    if (p.kind === 'user' && p.role === 'agent') return this.#store.payments.list({ ...q, tenantId, agentUserId: p.userId });
    return this.#store.payments.list({ ...q, tenantId });
  }

  csv(rows: readonly PaymentRecord[], header: 'en' | 'ja' = 'en'): string {
    return this.#store.payments.csv(rows, { header });
  }

  /** The newest stored event's id (0 when none). */
  lastEventId(): number {
    return this.#store.events.lastId();
  }

  /** Stored events after `id` that the principal may see (for a reconnecting stream). */
  eventsAfter(p: Principal, id: number, limit = 1000): DeskEvent[] {
    const q = p.kind === 'user' && p.role === 'admin' ? {} : p.kind === 'user' && p.role === 'agent' ? { tenantId: p.tenantId!, agentUserId: p.userId } : { tenantId: p.tenantId! };
    return this.#store.events.after(id, { ...q, limit }).map((e) => ({ id: e.id, at: e.at, type: e.type, tenantId: e.tenantId, callId: e.callId, paymentId: e.paymentId, agentUserId: e.agentUserId, data: e.payload }));
  }

  close(): void {
    this.#b2bua.off('call', this.#onCall);
    this.removeAllListeners();
  }

  // -------------------------------------------------------------------------------------------
  // following calls and their payments
  // -------------------------------------------------------------------------------------------

  #follow(call: Call): void {
    if (this.#live.has(call.id)) return;
    const live: LiveCall = { call, agentUserId: null, paymentId: null };
    this.#live.set(call.id, live);
    this.#publish(live, null, 'call.started', { caller: this.#view(live).caller, called: call.calledNumber ?? null });
    call.on('payment', (e) => this.#payment(live, e));
    call.on('ended', (end: CallEnd) => {
      this.#publish(live, null, 'call.ended', { reason: end.reason });
      this.#live.delete(call.id);
    });
  }

  #payment(live: LiveCall, e: PaymentEvent): void {
    const paymentId = e.paymentId;
    const { type, callId: _callId, paymentId: _paymentId, ...data } = e;
    if (e.type !== 'payment.refused' && (e.type === 'payment.completed' || e.type === 'payment.failed' || e.type === 'payment.cancelled')) live.paymentId = null;
    // the record, the event and its outbox rows are one write: all of them, or none
    const { event, queued } = this.#store.transaction(() => this.#keep(live, paymentId, type, data, this.#record(paymentId, e)?.statusCallback ?? null));
    this.#announce(event, queued);
  }

  /** Keeps the payment's record in step with its events; returns it as it was before. */
  #record(paymentId: string, e: PaymentEvent): PaymentRecord | undefined {
    const record = this.#store.payments.get(paymentId);
    if (!record) return undefined;
    // a payment that has ended keeps its ending: nothing after it rewrites the status
    if (FINAL_STATUSES.has(record.status)) return record;
    if (e.type === 'capture.progress') {
      const progress = { ...record.progress, [e.field]: { entered: e.entered, expected: e.expected, ...(e.valid !== undefined ? { valid: e.valid } : {}) } };
      // a field asked again after everything was keyed: the payment is being keyed once more
      const rekeying = record.status === 'ready' ? { status: 'capturing' as const } : {};
      this.#store.payments.update(paymentId, { progress, ...rekeying, ...(e.brand ? { brand: e.brand } : {}), ...(e.masked && e.field === 'payment-card-number' ? { last4: e.masked.slice(-4) } : {}) });
    } else if (e.type === 'payment.completed') {
      this.#store.payments.update(paymentId, { status: 'approved', result: e.result, ...(e.result.brand ? { brand: e.result.brand } : {}), ...(e.result.last4 ? { last4: e.result.last4 } : {}) });
    } else if (e.type === 'payment.failed') {
      const status: PaymentStatus = e.result ? (e.result.status === 'declined' ? 'declined' : 'error') : 'failed';
      this.#store.payments.update(paymentId, { status, failure: e.reason, ...(e.error ? { error: e.error } : {}), ...(e.result ? { result: e.result } : {}) });
    } else {
      const status = STATUS_OF[e.type];
      if (status) this.#store.payments.update(paymentId, { status });
    }
    return record;
  }

  #publish(live: LiveCall, paymentId: string | null, type: string, data: object): void {
    const { event, queued } = this.#store.transaction(() => this.#keep(live, paymentId, type, data, null));
    this.#announce(event, queued);
  }

  /** After the commit: the event to the streams, and the dispatcher woken if anything was queued. */
  #announce(event: DeskEvent, queued: boolean): void {
    this.emit('event', event);
    if (queued) this.emit('queued');
  }

  /**
   * Stores an event and its webhook messages (inside the caller's transaction): the tenant's, if
   * its webhooks take this type, and the payment's status callback, which takes every one.
   */
  #keep(live: LiveCall, paymentId: string | null, type: string, data: object, statusCallback: string | null): { event: DeskEvent; queued: boolean } {
    const tenantId = live.call.tenant.id;
    const stored = this.#store.events.append({ tenantId, callId: live.call.id, agentUserId: live.agentUserId, paymentId, type, payload: data });
    const event: DeskEvent = { id: stored.id, at: stored.at, type, tenantId, callId: live.call.id, paymentId, agentUserId: live.agentUserId, data };
    const payload = { id: event.id, type, at: event.at, callId: event.callId, paymentId, data };
    const toTenant = this.#webhooks(tenantId, type);
    if (toTenant) this.#store.webhooks.enqueue({ tenantId, type, payload });
    const toCallback = statusCallback !== null && statusCallback !== '';
    if (toCallback) this.#store.webhooks.enqueue({ tenantId, type, payload, url: statusCallback });
    return { event, queued: toTenant || toCallback };
  }

  #audit(actor: Actor, tenantId: string | null, action: string, resource: string, outcome: 'success' | 'failure', details: object): void {
    const p = actor.principal;
    try {
      this.#store.audit.append({ actorType: p.kind, actorId: p.kind === 'user' ? p.userId : p.keyId, tenantId, action, resource, outcome, origin: actor.origin, details });
    } catch (err) {
      this.#logger.error({ action, err: { name: (err as Error).name } }, 'audit append failed');
    }
  }

  /** The clock the desk reads (for the API's times). */
  get clock(): Clock {
    return this.#clock;
  }
}
