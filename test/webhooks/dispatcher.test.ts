import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { createLogger } from '../../src/log.ts';
import {
  retryAfterMs,
  WebhookDispatcher,
  type AttemptOutcome,
  type AttemptRecord,
  type OutboxMessage,
  type WebhookDispatcherOptions,
  type WebhookEndpoint,
  type WebhookOutbox,
} from '../../src/webhooks/dispatcher.ts';
import { verify } from '../../src/webhooks/signature.ts';
import { Receiver } from './receiver.ts';

// ---------------------------------------------------------------------------------------------
// An outbox in memory, implementing the store's seam with the store's semantics.
// ---------------------------------------------------------------------------------------------

interface Row {
  message: OutboxMessage;
  status: 'pending' | 'delivered' | 'failed';
  nextAttemptAtMs: number | null;
}

class MemoryOutbox implements WebhookOutbox {
  readonly rows = new Map<string, Row>();
  readonly attempts: { id: string; record: AttemptRecord }[] = [];
  /** Throw from the next recordAttempt (an outbox that cannot write). */
  failNextRecord = false;
  #seq = 0;

  enqueue(tenantId: string, type: string, data: Record<string, unknown>, nowWallMs: number): OutboxMessage {
    const id = `msg_test${String(++this.#seq).padStart(4, '0')}`;
    const createdAt = new Date(nowWallMs).toISOString();
    const message: OutboxMessage = { id, tenantId, type, body: JSON.stringify({ type, timestamp: createdAt, data }), attempts: 0, createdAt };
    this.rows.set(id, { message, status: 'pending', nextAttemptAtMs: nowWallMs });
    return message;
  }

  due(nowWallMs: number, limit: number): OutboxMessage[] {
    return [...this.rows.values()]
      .filter((r) => r.status === 'pending' && r.nextAttemptAtMs !== null && r.nextAttemptAtMs <= nowWallMs)
      .sort((a, b) => (a.nextAttemptAtMs ?? 0) - (b.nextAttemptAtMs ?? 0))
      .slice(0, limit)
      .map((r) => r.message);
  }

  recordAttempt(id: string, record: AttemptRecord): void {
    if (this.failNextRecord) {
      this.failNextRecord = false;
      throw new Error('disk I/O error');
    }
    const row = this.rows.get(id);
    if (!row || row.status !== 'pending') throw new Error(`attempt recorded for ${id}, which is ${row?.status ?? 'unknown'}`);
    this.attempts.push({ id, record });
    row.message = { ...row.message, attempts: row.message.attempts + 1 };
    row.status = record.outcome === 'retry' ? 'pending' : record.outcome;
    row.nextAttemptAtMs = record.outcome === 'retry' ? record.nextAttemptAtMs : null;
  }

  row(id: string): Row {
    const row = this.rows.get(id);
    if (!row) throw new Error(`no row ${id}`);
    return row;
  }
}

// ---------------------------------------------------------------------------------------------

const SECRET_KEY = randomBytes(32);
const SECRET = `whsec_${SECRET_KEY.toString('base64')}`;
/** Stands for payload content that must never reach a log. */
const BODY_MARKER = 'body-marker-5b0c1e';
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;

let clock: FakeClock;
let receiver: Receiver;
let outbox: MemoryOutbox;
let logs: string[];
let outcomes: [AttemptOutcome, string][];
let endpoints: Map<string, WebhookEndpoint>;
let fetchCalls: string[];
let dispatchers: WebhookDispatcher[];

const countingFetch: typeof fetch = (input, init) => {
  fetchCalls.push(new Headers(init?.headers).get('webhook-id') ?? '');
  return fetch(input, init);
};

function dispatcher(overrides: Partial<WebhookDispatcherOptions> = {}): WebhookDispatcher {
  const logger = createLogger({ level: 'debug', destination: new Writable({ write: (chunk: Buffer, _e, done) => (logs.push(chunk.toString()), done()) }) });
  const d = new WebhookDispatcher({
    outbox,
    endpoint: (tenantId) => endpoints.get(tenantId),
    clock,
    logger,
    fetch: countingFetch,
    onAttempt: (outcome, tenantId) => outcomes.push([outcome, tenantId]),
    ...overrides,
  });
  dispatchers.push(d);
  return d;
}

function enqueue(tenantId = 't1'): OutboxMessage {
  return outbox.enqueue(tenantId, 'payment.completed', { paymentId: 'pay_1', note: BODY_MARKER }, clock.wallMs());
}

function header(i: number, name: string): string {
  const value = receiver.received[i]?.headers[name];
  if (typeof value !== 'string') throw new Error(`request ${i} has no ${name}`);
  return value;
}

function attempt(i: number): AttemptRecord {
  const a = outbox.attempts[i];
  if (!a) throw new Error(`no attempt ${i}`);
  return a.record;
}

beforeEach(async () => {
  clock = new FakeClock(0, Date.UTC(2026, 10, 21, 9, 30, 0, 250));
  receiver = await Receiver.start();
  outbox = new MemoryOutbox();
  logs = [];
  outcomes = [];
  fetchCalls = [];
  dispatchers = [];
  endpoints = new Map([['t1', { url: receiver.url, secrets: [SECRET] }]]);
});

afterEach(async () => {
  for (const d of dispatchers) await d.close();
  // leak check: no poll timer, no request timer, nothing in flight
  expect(clock.pending).toBe(0);
  for (const d of dispatchers) expect(d.inFlight).toBe(0);
  await receiver.close();
});

describe('WebhookDispatcher', () => {
  it('delivers a message on the first try, signed so that it verifies with verify() and with a plain HMAC', async () => {
    const d = dispatcher();
    const message = enqueue();

    d.kick();
    await d.whenIdle();

    expect(receiver.received).toHaveLength(1);
    const got = receiver.received[0]!;
    expect(got.method).toBe('POST');
    expect(got.path).toBe('/hooks');
    expect(got.body).toBe(message.body);
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toBe(`hushpay-webhooks/${VERSION}`);
    expect(header(0, 'webhook-id')).toBe(message.id);
    const timestamp = header(0, 'webhook-timestamp');
    expect(timestamp).toBe(String(Math.floor(clock.wallMs() / 1000)));

    expect(verify(got.headers, got.body, SECRET, clock.wallMs())).toEqual({ msgId: message.id, timestampSeconds: Number(timestamp), secretIndex: 0 });
    const independent = createHmac('sha256', SECRET_KEY).update(`${message.id}.${timestamp}.${got.body}`).digest('base64');
    expect(header(0, 'webhook-signature')).toBe(`v1,${independent}`);

    expect(outbox.attempts).toEqual([{ id: message.id, record: { atMs: clock.wallMs(), statusCode: 200, durationMs: 0, error: null, outcome: 'delivered', nextAttemptAtMs: null } }]);
    expect(outbox.row(message.id).status).toBe('delivered');
    expect(outcomes).toEqual([['delivered', 't1']]);
  });

  it('signs with every secret of the endpoint during a rotation; either verifies', async () => {
    const old = `whsec_${randomBytes(24).toString('base64')}`;
    endpoints.set('t1', { url: receiver.url, secrets: [SECRET, old] });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    const got = receiver.received[0]!;
    expect(header(0, 'webhook-signature').split(' ')).toHaveLength(2);
    expect(verify(got.headers, got.body, [old], clock.wallMs()).secretIndex).toBe(0);
    expect(verify(got.headers, got.body, [SECRET], clock.wallMs()).secretIndex).toBe(0);
  });

  it('retries a 500 after 5 s, found by the poll, with the same id and a new timestamp, and then delivers', async () => {
    receiver.plan({ status: 500 });
    const d = dispatcher({ pollMs: 1000 });
    const message = enqueue();
    const t0 = clock.wallMs();

    d.start();
    await d.whenIdle();
    expect(attempt(0)).toEqual({ atMs: t0, statusCode: 500, durationMs: 0, error: 'HTTP 500', outcome: 'retry', nextAttemptAtMs: t0 + 5 * S });

    clock.advance(5 * S - 1);
    await d.whenIdle();
    expect(receiver.received).toHaveLength(1);

    clock.advance(1);
    await d.whenIdle();
    expect(receiver.received).toHaveLength(2);
    expect(attempt(1)).toMatchObject({ atMs: t0 + 5 * S, statusCode: 200, error: null, outcome: 'delivered' });
    expect(header(1, 'webhook-id')).toBe(message.id);
    expect(Number(header(1, 'webhook-timestamp')) - Number(header(0, 'webhook-timestamp'))).toBe(5);
    expect(verify(receiver.received[1]!.headers, receiver.received[1]!.body, SECRET, clock.wallMs()).msgId).toBe(message.id);
    expect(outcomes).toEqual([['retry', 't1'], ['delivered', 't1']]);
  });

  it('walks the retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) to failed after the eighth attempt', async () => {
    receiver.fallback({ status: 500 });
    const d = dispatcher();
    const message = enqueue();
    const delays = [5 * S, 5 * MIN, 30 * MIN, 2 * H, 5 * H, 10 * H, 10 * H];

    for (const [i, delay] of delays.entries()) {
      d.kick();
      await d.whenIdle();
      expect(receiver.received).toHaveLength(i + 1);
      const a = attempt(i);
      expect(a.outcome).toBe('retry');
      expect(a.nextAttemptAtMs! - a.atMs).toBe(delay);

      // not a moment early
      clock.advance(delay - 1);
      d.kick();
      await d.whenIdle();
      expect(receiver.received).toHaveLength(i + 1);
      clock.advance(1);
    }

    d.kick();
    await d.whenIdle();
    expect(receiver.received).toHaveLength(8);
    expect(attempt(7)).toMatchObject({ statusCode: 500, error: 'HTTP 500', outcome: 'failed', nextAttemptAtMs: null });
    expect(outbox.row(message.id).status).toBe('failed');

    clock.advance(100 * H);
    d.kick();
    await d.whenIdle();
    expect(receiver.received).toHaveLength(8);
    expect(new Set(receiver.received.map((_, i) => header(i, 'webhook-id')))).toEqual(new Set([message.id]));
    expect(outcomes.map(([o]) => o)).toEqual([...Array<AttemptOutcome>(7).fill('retry'), 'failed']);
  });

  it('fails a message at once on 410 Gone (the receiver asks to stop), without retrying', async () => {
    receiver.plan({ status: 410 });
    const d = dispatcher();
    const message = enqueue();

    d.kick();
    await d.whenIdle();

    expect(attempt(0)).toMatchObject({ statusCode: 410, error: 'HTTP 410', outcome: 'failed', nextAttemptAtMs: null });
    expect(outbox.row(message.id).status).toBe('failed');
  });

  it.each([404, 429, 503])('retries on %i', async (status) => {
    receiver.plan({ status });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    expect(attempt(0)).toMatchObject({ statusCode: status, error: `HTTP ${status}`, outcome: 'retry' });
  });

  it('does not follow a redirect: a 302 is an attempt that failed, retried later', async () => {
    receiver.plan({ status: 302, headers: { location: '/elsewhere' } });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    expect(receiver.received.map((r) => r.path)).toEqual(['/hooks']);
    expect(attempt(0)).toMatchObject({ statusCode: 302, error: 'HTTP 302', outcome: 'retry' });
  });

  it.each([
    ['later than the schedule moves the next attempt out to it', '120', 120 * S],
    ['earlier than the schedule does not bring it forward', '1', 5 * S],
    ['beyond the longest delay is capped at it', '999999', 10 * H],
  ])('takes Retry-After into account: one %s', async (_what, retryAfter, delayMs) => {
    receiver.plan({ status: 503, headers: { 'retry-after': retryAfter } });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    expect(attempt(0).nextAttemptAtMs! - attempt(0).atMs).toBe(delayMs);
  });

  it('reads Retry-After as seconds or as an HTTP-date', () => {
    const now = Date.UTC(2026, 10, 21, 9, 30, 0);
    expect(retryAfterMs('30', now)).toBe(30 * S);
    expect(retryAfterMs(new Date(now + 90 * S).toUTCString(), now)).toBe(90 * S);
    expect(retryAfterMs(new Date(now - 90 * S).toUTCString(), now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  it('gives up on a receiver that never answers after timeoutMs on the clock, and retries', async () => {
    receiver.plan('hang');
    const d = dispatcher({ timeoutMs: 2000 });
    const message = enqueue();
    const t0 = clock.wallMs();

    d.kick();
    await receiver.arrived(1);
    clock.advance(1999);
    expect(d.inFlight).toBe(1);
    expect(outbox.attempts).toHaveLength(0);

    clock.advance(1);
    await d.whenIdle();

    expect(attempt(0)).toEqual({ atMs: t0, statusCode: null, durationMs: 2000, error: 'timeout', outcome: 'retry', nextAttemptAtMs: t0 + 2000 + 5 * S });
    expect(outbox.row(message.id).status).toBe('pending');
    await receiver.received[0]!.clientGone; // the request was really aborted
  });

  it('retries a refused connection, naming it ECONNREFUSED', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    endpoints.set('t1', { url: `http://127.0.0.1:${port}/hooks`, secrets: [SECRET] });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    expect(attempt(0)).toMatchObject({ statusCode: null, error: 'ECONNREFUSED', outcome: 'retry' });
  });

  it('close() aborts the request in flight, records no attempt, leaves no timers, and is idempotent; the next dispatcher sends the message again', async () => {
    receiver.plan('hang');
    const d = dispatcher({ pollMs: 1000 });
    const message = enqueue();

    d.start();
    await receiver.arrived(1);
    expect(clock.pending).toBe(2); // the poll and the request's timeout

    const closing = d.close();
    expect(d.close()).toBe(closing);
    await closing;

    expect(d.closed).toBe(true);
    expect(d.inFlight).toBe(0);
    expect(clock.pending).toBe(0);
    expect(outbox.attempts).toHaveLength(0);
    expect(outbox.row(message.id)).toMatchObject({ status: 'pending', message: { attempts: 0 } });
    await receiver.received[0]!.clientGone;

    d.kick();
    d.start();
    expect(fetchCalls).toHaveLength(1);
    expect(clock.pending).toBe(0);

    const next = dispatcher();
    next.kick();
    await next.whenIdle();
    expect(header(1, 'webhook-id')).toBe(message.id);
    expect(attempt(0)).toMatchObject({ outcome: 'delivered' });
  });

  it('fails a message at once, sending nothing, when its tenant has no endpoint', async () => {
    const d = dispatcher();
    const message = enqueue('t2');

    d.kick();
    await d.whenIdle();

    expect(fetchCalls).toHaveLength(0);
    expect(receiver.received).toHaveLength(0);
    expect(outbox.attempts).toEqual([{ id: message.id, record: { atMs: clock.wallMs(), statusCode: null, durationMs: 0, error: 'no endpoint', outcome: 'failed', nextAttemptAtMs: null } }]);
    expect(outcomes).toEqual([['failed', 't2']]);
  });

  it('fails a message at once, sending nothing, when the endpoint\'s secret is not whsec_…, and does not log the secret', async () => {
    endpoints.set('t1', { url: receiver.url, secrets: ['hunter2-not-a-secret'] });
    const d = dispatcher();
    enqueue();

    d.kick();
    await d.whenIdle();

    expect(fetchCalls).toHaveLength(0);
    expect(attempt(0)).toMatchObject({ error: 'bad secret', outcome: 'failed' });
    expect(logs.join('')).not.toContain('hunter2');
  });

  it('never has one message in flight twice, however often it is kicked or polled', async () => {
    receiver.plan('hang');
    const d = dispatcher({ pollMs: 1000 });
    const message = enqueue();

    d.start();
    await receiver.arrived(1);
    d.kick();
    d.kick();
    clock.advance(3000);
    expect(fetchCalls).toEqual([message.id]);

    receiver.release(200);
    await d.whenIdle();
    expect(receiver.received).toHaveLength(1);
    expect(outbox.attempts.map((a) => a.record.outcome)).toEqual(['delivered']);
  });

  it('keeps at most `concurrency` requests in flight and drains the backlog as they finish', async () => {
    receiver.fallback('hang');
    const d = dispatcher({ concurrency: 2 });
    const messages = [enqueue(), enqueue(), enqueue(), enqueue(), enqueue()];

    d.kick();
    await receiver.arrived(2);
    expect(fetchCalls).toHaveLength(2);
    expect(d.inFlight).toBe(2);

    receiver.fallback({ status: 200 });
    receiver.release(200);
    await d.whenIdle();

    expect(receiver.maxConcurrent).toBe(2);
    expect(new Set(receiver.received.map((_, i) => header(i, 'webhook-id')))).toEqual(new Set(messages.map((m) => m.id)));
    expect(outbox.attempts.map((a) => a.record.outcome)).toEqual(Array<AttemptOutcome>(5).fill('delivered'));
  });

  it('does not let a message in flight (still due in the outbox) hold back the one behind it', async () => {
    receiver.plan('hang');
    const d = dispatcher({ concurrency: 2 });
    const first = enqueue();

    d.kick();
    await receiver.arrived(1);
    const second = enqueue();
    d.kick();
    await receiver.arrived(2);

    expect(fetchCalls).toEqual([first.id, second.id]);
    receiver.release(200);
    await d.whenIdle();
    expect(outbox.row(first.id).status).toBe('delivered');
    expect(outbox.row(second.id).status).toBe('delivered');
    expect(outbox.attempts).toHaveLength(2);
  });

  it('does not resend in a loop when the outbox cannot record an attempt; the next kick sends it again', async () => {
    outbox.failNextRecord = true;
    const d = dispatcher();
    const message = enqueue();

    d.kick();
    await d.whenIdle();
    expect(fetchCalls).toEqual([message.id]);
    expect(outbox.attempts).toHaveLength(0);
    expect(logs.join('')).toContain('recording an attempt failed');

    d.kick();
    await d.whenIdle();
    expect(fetchCalls).toEqual([message.id, message.id]);
    expect(outbox.row(message.id).status).toBe('delivered');
  });

  it('keeps polling after the outbox fails to list due messages', async () => {
    const due = outbox.due.bind(outbox);
    let failures = 1;
    outbox.due = (now, limit) => {
      if (failures-- > 0) throw new Error('database is locked');
      return due(now, limit);
    };
    const d = dispatcher({ pollMs: 1000 });
    enqueue();

    d.start();
    expect(fetchCalls).toHaveLength(0);
    expect(logs.join('')).toContain('reading due messages failed');

    clock.advance(1000);
    await d.whenIdle();
    expect(outbox.attempts.map((a) => a.record.outcome)).toEqual(['delivered']);
  });

  it('records the attempt even when the onAttempt listener throws', async () => {
    const d = dispatcher({
      onAttempt: () => {
        throw new Error('metrics broke');
      },
    });
    const message = enqueue();

    d.kick();
    await d.whenIdle();

    expect(outbox.row(message.id).status).toBe('delivered');
    expect(logs.join('')).toContain('webhook onAttempt listener threw');
  });

  it('logs the message id, tenant, type, attempt and status — never the body, the secret or the signature', async () => {
    receiver.plan({ status: 500 });
    const d = dispatcher();
    const message = enqueue();

    d.kick();
    await d.whenIdle();
    clock.advance(5 * S);
    d.kick();
    await d.whenIdle();

    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l['msg'] === 'webhook attempt failed; will retry')).toMatchObject({ msgId: message.id, tenantId: 't1', type: 'payment.completed', attempt: 1, status: 500, error: 'HTTP 500' });
    expect(lines.find((l) => l['msg'] === 'webhook delivered')).toMatchObject({ msgId: message.id, tenantId: 't1', type: 'payment.completed', attempt: 2, status: 200 });
    const text = logs.join('');
    expect(text).not.toContain(BODY_MARKER);
    expect(text).not.toContain(SECRET_KEY.toString('base64'));
    expect(text).not.toContain(header(0, 'webhook-signature').slice(3));
  });

  it('refuses options that are not positive integers', () => {
    expect(() => dispatcher({ concurrency: 0 })).toThrow(RangeError);
    expect(() => dispatcher({ timeoutMs: 1.5 })).toThrow(RangeError);
  });
});
