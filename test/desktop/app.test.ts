/**
 * The HTTP side over real HTTP and a real WebSocket, on a hushpay with real SIP calls from
 * sip-sim: logins and keys, each boundary of who may see what, a payment started through the
 * API and keyed by a caller, the event stream and its resumption, errors, the OpenAPI document
 * and the metrics — and no card digit in any answer, event, log line or database byte.
 */

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/calls/call.ts';
import { SimCaller } from '../../sip-sim/index.ts';
import type { CallSummary } from '../../sip-sim/index.ts';
import { Client, type DeskWorld, PASSWORD, startDeskWorld, totpCode } from './support.ts';

const CARD = '4111111111111111';
const EXPIRY = '1230';
const CODE = '123';

let world: DeskWorld;
let caller: SimCaller;
beforeAll(async () => {
  world = await startDeskWorld();
  caller = await SimCaller.start();
}, 20_000);
afterAll(async () => {
  await caller?.close();
  await world?.close();
});

/** Places a call to `number` and resolves once it is connected, with hushpay's id for it. */
async function liveCall(number: string, options: { digits?: string; afterMs?: number; hangupAfterMs?: number } = {}): Promise<{ call: Call; ended: Promise<CallSummary> }> {
  const arrived = new Promise<Call>((resolve) => {
    const on = (call: Call): void => {
      if (call.calledNumber !== number) return;
      world.hushpay.b2bua.off('call', on);
      call.on('active', () => resolve(call));
    };
    world.hushpay.b2bua.on('call', on);
  });
  const ended = caller.placeCall({
    to: `sip:${number}@127.0.0.1:${world.hushpay.sipPort}`,
    fromUser: '0312345678',
    ...(options.digits ? { digits: options.digits, dtmf: 'rfc4733' as const, toneMs: 80, gapMs: 80 } : {}),
    afterMs: options.afterMs ?? 500,
    hangupAfterMs: options.hangupAfterMs ?? 4_000,
  });
  return { call: await arrived, ended };
}

describe('logins', () => {
  it('a wrong password is refused and audited; a right one sets an httpOnly SameSite=Strict cookie and gives a CSRF token', async () => {
    const c = new Client(world.base);
    const bad = await c.post('/v1/auth/login', { username: 'aiko', password: 'wrong' });
    expect(bad.status).toBe(401);
    expect(bad.json).toEqual({ error: { code: 'bad_credentials', message: expect.any(String) } });
    expect(bad.headers.get('set-cookie')).toBeNull();
    const ok = await c.post('/v1/auth/login', { username: 'aiko', password: PASSWORD });
    expect(ok.status).toBe(200);
    expect(ok.json.user).toMatchObject({ username: 'aiko', role: 'agent', tenantId: 'acme' });
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^hp_session=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);
    expect(ok.json.csrfToken).toMatch(/.{20,}/);
    const me = await c.get('/v1/auth/me');
    expect(me.json.user.username).toBe('aiko');
    const audit = world.hushpay.store.audit.list({}).filter((e) => e.action === 'auth.login');
    expect(audit.some((e) => e.outcome === 'failure' && e.origin === '127.0.0.1')).toBe(true);
    expect(audit.some((e) => e.outcome === 'success' && e.actorId === world.users.agentA)).toBe(true);
    // the password is in no audit entry
    expect(JSON.stringify(world.hushpay.store.audit.list({}))).not.toContain('wrong');
  });

  it('a change without the CSRF token is refused; logging out ends the session', async () => {
    const c = await Client.login(world.base, 'ben');
    const csrf = c.csrf;
    c.csrf = undefined;
    const refused = await c.post('/v1/calls/hp_x/claim');
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('csrf');
    c.csrf = 'not-the-token';
    expect((await c.post('/v1/calls/hp_x/claim')).status).toBe(403);
    c.csrf = csrf;
    expect((await c.post('/v1/calls/hp_x/claim')).status).toBe(404); // past CSRF: no such call
    // an open event stream ends with the login; one resuming past the newest id (a restored
    // store) starts at the newest instead of waiting for ids it will never see
    const stream = await c.events();
    const ahead = await c.events(1_000_000_000);
    const next = world.hushpay.store.events.lastId() + 1;
    (world.hushpay.desk as unknown as { emit(name: 'event', e: object): void }).emit('event', { id: next, at: new Date().toISOString(), type: 'call.assigned', tenantId: 'acme', callId: 'hp_any', paymentId: null, agentUserId: world.users.agentB, data: {} });
    expect((await ahead.waitFor((e) => e.id === next, 2_000)).type).toBe('call.assigned');
    expect((await c.post('/v1/auth/logout')).status).toBe(204);
    expect(await stream.closed).toBe(4401);
    expect(await ahead.closed).toBe(4401);
    c.cookie = c.cookie ?? '';
    expect((await c.get('/v1/auth/me')).status).toBe(401);
  });

  it('an admin needs a TOTP code, and a code works once', async () => {
    const c = new Client(world.base);
    expect((await c.post('/v1/auth/login', { username: 'root', password: PASSWORD })).json.error.code).toBe('totp_required');
    expect((await c.post('/v1/auth/login', { username: 'root', password: PASSWORD, totp: '000000' })).json.error.code).toBe('bad_totp');
    const code = totpCode(world.users.adminTotp, Date.now());
    expect((await c.post('/v1/auth/login', { username: 'root', password: PASSWORD, totp: code })).status).toBe(200);
    const again = new Client(world.base);
    expect((await again.post('/v1/auth/login', { username: 'root', password: PASSWORD, totp: code })).json.error.code).toBe('bad_totp');
  });

  it('ten failures lock a username for a while, the right password too, however it is typed', async () => {
    await world.hushpay.store.users.create({ tenantId: 'acme', username: 'locky', role: 'agent', password: PASSWORD });
    const c = new Client(world.base);
    for (let i = 0; i < 10; i++) expect((await c.post('/v1/auth/login', { username: i % 2 ? 'LOCKY' : 'locky', password: `no${i}` })).status).toBe(401);
    const locked = await c.post('/v1/auth/login', { username: 'locky', password: PASSWORD });
    expect(locked.status).toBe(429);
    expect(locked.json.error.code).toBe('locked');
  });

  it('anyone who enrolled a second factor is asked for it, not only admins', async () => {
    const id = (await world.hushpay.store.users.create({ tenantId: 'acme', username: 'careful', role: 'agent', password: PASSWORD })).id;
    const secret = (await import('../../src/store/totp.ts')).generateTotpSecret();
    world.hushpay.store.users.setTotpSecret(id, secret);
    const c = new Client(world.base);
    expect((await c.post('/v1/auth/login', { username: 'careful', password: PASSWORD })).json.error.code).toBe('totp_required');
    expect((await c.post('/v1/auth/login', { username: 'careful', password: PASSWORD, totp: totpCode(secret, Date.now()) })).status).toBe(200);
  });

  it('an API key works as a bearer token until revoked; no login, no entry', async () => {
    const { key, record } = world.hushpay.store.apiKeys.create({ tenantId: 'acme', name: 'crm' });
    const c = new Client(world.base, { apiKey: key });
    expect((await c.get('/v1/calls')).status).toBe(200);
    world.hushpay.store.apiKeys.revoke(record.id);
    expect((await c.get('/v1/calls')).status).toBe(401);
    expect((await new Client(world.base).get('/v1/calls')).json.error.code).toBe('unauthenticated');
    expect((await new Client(world.base, { apiKey: 'hpk_' + 'x'.repeat(43) }).get('/v1/calls')).status).toBe(401);
  });
});

describe('who may see what', () => {
  it('an agent sees its own calls, a supervisor its tenant’s, an admin all; another tenant sees nothing of them', async () => {
    const acme = await liveCall('100');
    const globex = await liveCall('200');
    const aiko = await Client.login(world.base, 'aiko');
    const ben = await Client.login(world.base, 'ben');
    const sato = await Client.login(world.base, 'sato');
    const gina = await Client.login(world.base, 'gina');
    const root = await Client.login(world.base, 'root', PASSWORD, totpCode(world.users.adminTotp, Date.now() + 30_000));
    const ids = async (c: Client): Promise<string[]> => ((await c.get('/v1/calls')).json.calls as { id: string }[]).map((x) => x.id);

    expect(await ids(aiko)).toEqual([]);
    // gina (globex) cannot take acme's call: it does not exist for her
    expect((await gina.post(`/v1/calls/${acme.call.id}/claim`)).status).toBe(404);
    const claimed = await aiko.post(`/v1/calls/${acme.call.id}/claim`);
    expect(claimed.status).toBe(200);
    expect(claimed.json).toMatchObject({ id: acme.call.id, tenantId: 'acme', agentUserId: world.users.agentA, caller: '••••••5678' });
    expect(await ids(aiko)).toEqual([acme.call.id]);
    expect(await ids(ben)).toEqual([]);
    expect((await ben.post(`/v1/calls/${acme.call.id}/claim`)).json.error.code).toBe('call_taken');
    expect(await ids(sato)).toEqual([acme.call.id]);
    expect((await ids(root)).sort()).toEqual([acme.call.id, globex.call.id].sort());
    expect(await ids(gina)).toEqual([]);
    // an agent does not assign; a supervisor does, within the tenant only
    expect((await aiko.post(`/v1/calls/${acme.call.id}/assign`, { userId: world.users.agentB })).status).toBe(403);
    expect((await sato.post(`/v1/calls/${globex.call.id}/assign`, { userId: world.users.agentB })).status).toBe(404);
    // only to a user of the call's tenant
    expect((await root.post(`/v1/calls/${globex.call.id}/assign`, { userId: world.users.agentB })).json.error.code).toBe('user_not_found');
    expect((await sato.post(`/v1/calls/${acme.call.id}/assign`, { userId: 'usr_nobody' })).json.error.code).toBe('user_not_found');

    // a payment on acme's call: acme's agent on the call, its supervisor and acme's key see it; nobody else
    const started = await aiko.post(`/v1/calls/${acme.call.id}/payments`, { idempotencyKey: 'order-1', amount: 5000, currency: 'JPY' });
    expect(started.status).toBe(201);
    const paymentId = started.json.id as string;
    const { key: globexKey } = world.hushpay.store.apiKeys.create({ tenantId: 'globex', name: 'globex crm' });
    const { key: acmeKey } = world.hushpay.store.apiKeys.create({ tenantId: 'acme', name: 'acme crm' });
    for (const c of [aiko, sato, root, new Client(world.base, { apiKey: acmeKey })]) expect((await c.get(`/v1/payments/${paymentId}`)).status).toBe(200);
    for (const c of [ben, gina, new Client(world.base, { apiKey: globexKey })]) {
      const r = await c.get(`/v1/payments/${paymentId}`);
      expect(r.status).toBe(404);
      expect(r.json.error.code).toBe('payment_not_found');
      expect((await c.post(`/v1/payments/${paymentId}`, { status: 'cancel' })).status).toBe(404);
      expect(((await c.get('/v1/payments')).json.payments as { id: string }[]).map((p) => p.id)).not.toContain(paymentId);
    }
    // globex's key cannot start a payment on acme's call either
    expect((await new Client(world.base, { apiKey: globexKey }).post(`/v1/calls/${acme.call.id}/payments`, { idempotencyKey: 'x', amount: 1, currency: 'JPY' })).status).toBe(404);
    // while it runs: no second payment (and the running one stays the call's), no change of agent
    expect((await aiko.post(`/v1/calls/${acme.call.id}/payments`, { idempotencyKey: 'order-2', amount: 5000, currency: 'JPY' })).json.error.code).toBe('payment_in_progress');
    expect(((await aiko.get('/v1/calls')).json.calls as { paymentId: string }[])[0]!.paymentId).toBe(paymentId);
    expect((await sato.post(`/v1/calls/${acme.call.id}/assign`, { userId: world.users.agentB })).json.error.code).toBe('payment_in_progress');
    expect((await aiko.post(`/v1/payments/${paymentId}`, { status: 'cancel' })).status).toBe(202);
    await Promise.all([acme.ended, globex.ended]);
  }, 20_000);
});

describe('a payment through the API', () => {
  it('starts on a live call, streams masked progress as the caller keys, completes approved, and resumes without loss', async () => {
    const aiko = await Client.login(world.base, 'aiko');
    const stream = await aiko.events();
    const { call, ended } = await liveCall('100', { digits: `${CARD}${EXPIRY}${CODE}`, afterMs: 1_500, hangupAfterMs: 10_000 });
    expect((await aiko.post(`/v1/calls/${call.id}/claim`)).status).toBe(200);
    const body = { idempotencyKey: 'order-42', amount: 12_000, currency: 'jpy', method: { kind: 'installments', count: 3 } };
    const started = await aiko.post(`/v1/calls/${call.id}/payments`, body);
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ callId: call.id, tenantId: 'acme', status: 'capturing', amount: { value: 12_000, currency: 'JPY' }, method: { kind: 'installments', count: 3 } });
    const paymentId = started.json.id as string;
    // the same key answers the same payment, and starts nothing
    const again = await aiko.post(`/v1/calls/${call.id}/payments`, body);
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(paymentId);

    await stream.waitFor((e) => e.type === 'payment.ready' && e.paymentId === paymentId);
    const progress = stream.events.filter((e) => e.type === 'capture.progress' && e.data['field'] === 'payment-card-number');
    // the field opens at 0, counts each key once, and closes valid with the brand and last four
    const counts = progress.map((e) => e.data['entered'] as number);
    expect(counts[0]).toBe(0);
    expect(counts.filter((n, i) => n > 0 && counts.indexOf(n) === i)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(progress.at(-1)!.data).toMatchObject({ brand: 'visa', entered: 16, expected: 16, valid: true, masked: expect.stringMatching(/1111$/) });
    // ids rise one by one from the stream's first: none skipped, none twice
    const streamIds = stream.events.map((e) => e.id);
    expect(streamIds).toEqual([...streamIds].sort((a, b) => a - b));
    expect(new Set(streamIds).size).toBe(streamIds.length);

    // a refresh in the middle: a new stream after an early id gets exactly the rest
    const cut = progress[5]!.id;
    const resumed = await aiko.events(cut);
    expect((await aiko.post(`/v1/payments/${paymentId}`, { status: 'complete' })).status).toBe(202);
    const done = await stream.waitFor((e) => e.type === 'payment.completed');
    await resumed.waitFor((e) => e.type === 'payment.completed');
    expect(done.data['result']).toMatchObject({ status: 'approved', last4: '1111', brand: 'visa', amount: 12_000 });
    expect(resumed.events.map((e) => e.id)).toEqual(stream.events.filter((e) => e.id > cut).map((e) => e.id));

    const record = await aiko.get(`/v1/payments/${paymentId}`);
    expect(record.json).toMatchObject({ status: 'approved', brand: 'visa', last4: '1111', result: { status: 'approved', approvalNumber: expect.stringMatching(/^\d{6}$/) } });
    const csv = await aiko.get('/v1/payments?format=csv&header=ja');
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.text.split('\r\n')[0]).toContain('承認番号');
    expect(csv.text).toContain(paymentId);
    // after it ended, the payment cannot be changed
    expect((await aiko.post(`/v1/payments/${paymentId}`, { status: 'cancel' })).json.error.code).toBe('payment_not_active');

    await ended;
    await stream.waitFor((e) => e.type === 'call.ended' && e.callId === call.id);
    await Promise.all([stream.close(), resumed.close()]);

    // the metrics counted it
    const metrics = await (await fetch(`${world.base}/metrics`)).text();
    expect(metrics).toMatch(/hushpay_payments_total\{result="approved"\} [1-9]/);
    expect(metrics).toMatch(/hushpay_digits_total\{channel="rfc4733"\} (2[3-9]|[3-9]\d|\d{3,})/);
    expect(metrics).toMatch(/^hushpay_live_calls \d+$/m);

    // no card data anywhere: answers, events, logs, the database and every file hushpay wrote
    const said = [...aiko.received, ...stream.raw, ...resumed.raw, ...world.hushpay.logLines].join('\n');
    for (const secret of [CARD, CARD.slice(0, 12), CARD.slice(6, 12), `"${CODE}"`, EXPIRY]) expect(said.includes(secret), secret).toBe(false);
    const files = readdirSync(world.hushpay.dataDir).filter((f) => f.startsWith('hushpay.db'));
    expect(files).toContain('hushpay.db');
    for (const f of files) {
      const bytes = readFileSync(join(world.hushpay.dataDir, f));
      for (const secret of [CARD, CARD.slice(0, 12)]) {
        expect(bytes.includes(Buffer.from(secret, 'latin1')), `${f}: ${secret}`).toBe(false);
        expect(bytes.includes(Buffer.from(secret, 'utf16le')), `${f}: ${secret} utf16`).toBe(false);
      }
    }
  }, 30_000);

  it('a field asked again puts the payment back to keying: it cannot be completed until keyed; an ended payment keeps its ending', async () => {
    const sato = await Client.login(world.base, 'sato');
    const stream = await sato.events();
    const { call, ended } = await liveCall('100', { digits: `${CARD}${EXPIRY}${CODE}`, afterMs: 1_500, hangupAfterMs: 7_000 });
    const started = await sato.post(`/v1/calls/${call.id}/payments`, { idempotencyKey: 'again-1', amount: 100, currency: 'JPY' });
    const id = started.json.id as string;
    await stream.waitFor((e) => e.type === 'payment.ready' && e.paymentId === id);
    expect((await sato.get(`/v1/payments/${id}`)).json.status).toBe('ready');
    expect((await sato.post(`/v1/payments/${id}`, { capture: 'security-code' })).status).toBe(202);
    await stream.waitFor((e) => e.type === 'capture.progress' && e.paymentId === id && e.data['field'] === 'security-code' && e.data['entered'] === 0);
    expect((await sato.get(`/v1/payments/${id}`)).json.status).toBe('capturing');
    expect((await sato.post(`/v1/payments/${id}`, { status: 'complete' })).json.error.code).toBe('payment_not_ready');
    expect((await sato.post(`/v1/payments/${id}`, { status: 'cancel' })).status).toBe(202);
    await ended;
    await stream.waitFor((e) => e.type === 'call.ended' && e.callId === call.id);
    expect((await sato.get(`/v1/payments/${id}`)).json.status).toBe('cancelled');
    expect(stream.events.filter((e) => e.paymentId === id && e.type === 'payment.cancelled')).toHaveLength(1);
    await stream.close();
  }, 20_000);

  it('refuses what it cannot do, with one error shape and a stable code', async () => {
    const sato = await Client.login(world.base, 'sato');
    const { call, ended } = await liveCall('100');
    const cases: [string, string, unknown, number, string][] = [
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a' }, 422, 'amount_required'],
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: -5, currency: 'JPY' }, 400, 'invalid_request'],
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: 5, currency: 'JPY', cardNumber: CARD }, 400, 'invalid_request'],
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: 5, currency: 'JPY', method: { kind: 'installments' } }, 422, 'installments_count_required'],
      // acme has no webhook secret to sign a status callback with
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: 5, currency: 'JPY', statusCallback: 'https://crm.example/cb' }, 422, 'status_callback_unsigned'],
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: 5, currency: 'JPY', statusCallback: 'file:///etc/passwd' }, 400, 'invalid_request'],
      // a card number pasted into the merchant's own fields
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'a', amount: 5, currency: 'JPY', orderId: '4111111111111111' }, 422, 'card_number_in_field'],
      ['POST', `/v1/calls/${call.id}/payments`, { idempotencyKey: 'key 4111 1111 1111 1111', amount: 5, currency: 'JPY' }, 422, 'card_number_in_field'],
      ['POST', `/v1/calls/${call.id}/payments`, '{"idempotencyKey": ', 400, 'bad_request'],
      ['POST', '/v1/calls/hp_nope/payments', { idempotencyKey: 'a', amount: 5, currency: 'JPY' }, 404, 'call_not_found'],
      ['POST', '/v1/calls/..%2f..%2fetc/payments', { idempotencyKey: 'a', amount: 5, currency: 'JPY' }, 400, 'invalid_request'],
      ['POST', '/v1/payments/pay_nope', { status: 'complete' }, 404, 'payment_not_found'],
      ['POST', '/v1/payments/pay_nope', {}, 400, 'invalid_request'],
      ['GET', '/v1/payments?from=yesterday', undefined, 400, 'invalid_request'],
      ['GET', '/v1/payments?status=lost', undefined, 400, 'invalid_request'],
      ['GET', '/v1/nothing-here', undefined, 404, 'not_found'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await sato.request(method, path, body);
      expect([path, r.status, r.json?.error?.code]).toEqual([path, status, code]);
      expect(Object.keys(r.json)).toEqual(['error']);
      expect(r.text).not.toContain(CARD);
    }
    const big = await sato.request('POST', `/v1/calls/${call.id}/payments`, JSON.stringify({ idempotencyKey: 'x'.repeat(100_000) }));
    expect([big.status, big.json.error.code]).toEqual([413, 'body_too_large']);
    await ended;
  }, 20_000);
});

describe('the documents', () => {
  it('serves an OpenAPI 3.1 document with every route and its schemas, and a page to read it', async () => {
    const doc = (await (await fetch(`${world.base}/docs/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
    expect(doc.openapi).toBe('3.1.0');
    for (const [path, method] of [
      ['/v1/calls', 'get'],
      ['/v1/calls/{callId}/payments', 'post'],
      ['/v1/payments/{paymentId}', 'post'],
      ['/v1/payments/{paymentId}', 'get'],
      ['/v1/payments', 'get'],
      ['/v1/events', 'get'],
      ['/v1/auth/login', 'post'],
    ] as const) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    expect(doc.paths['/v1/calls/{callId}/payments']!['post']!.requestBody).toBeDefined();
    expect(Object.keys(doc.paths['/v1/payments/{paymentId}']!['get']!.responses)).toEqual(expect.arrayContaining(['200', '404']));
    const page = await fetch(`${world.base}/docs`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('/v1/calls/{callId}/payments');
  });

  it('serves the agent page with a strict content security policy', async () => {
    const r = await fetch(`${world.base}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'self'");
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await r.text()).toContain('app.js');
  });

  it('a stream resuming after a long absence gets every stored event it may see, past one page', async () => {
    const sato = await Client.login(world.base, 'sato');
    const { events } = world.hushpay.store;
    const from = events.lastId();
    for (let i = 0; i < 2_500; i++) events.append({ tenantId: i % 5 === 0 ? 'globex' : 'acme', callId: 'hp_old', agentUserId: null, paymentId: null, type: 'call.started', payload: { n: i } });
    const stream = await sato.events(from);
    const acmeCount = 2_500 - 500;
    await stream.waitFor(() => stream.events.length >= acmeCount);
    await new Promise((r) => setTimeout(r, 100));
    expect(stream.events.length).toBe(acmeCount);
    expect(stream.events.every((e) => (e.data['n'] as number) % 5 !== 0)).toBe(true);
    await stream.close();
  });

  it('refuses an event stream to a stranger and to another site’s page', async () => {
    await expect(new Client(world.base).events()).rejects.toThrow(/refused/);
    const aiko = await Client.login(world.base, 'aiko');
    const url = `${world.base.replace(/^http/, 'ws')}/v1/events`;
    const { EventStream } = await import('./support.ts');
    await expect(EventStream.open(url, { ...aiko.headers(), origin: 'https://evil.example' })).rejects.toThrow(/refused/);
  });
});
