/**
 * The HTTP side of hushpay: the REST API (shaped after Twilio's Payments resource), the event
 * stream, the OpenAPI document, the agent page and the metrics — one fastify app, built here
 * from its dependencies and started elsewhere (server.ts), so tests use `app.inject()`.
 *
 * - Every route has a JSON schema; the OpenAPI 3.1 document is generated from them
 *   (`/docs/openapi.json`, readable at `/docs`). Response schemas are allow-lists: a field not
 *   in the schema never leaves.
 * - One error shape: `{ "error": { "code", "message" } }` with a stable code; no internal
 *   message leaks out.
 * - Who: a browser logs in (scrypt password; TOTP as well for admins, PCI DSS 8.4) and holds an
 *   httpOnly SameSite=Strict session cookie, with a CSRF token for every change; an integration
 *   sends `Authorization: Bearer hpk_…` (an API key, stored hashed). Every login, payment action
 *   and failure is audited.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { Clock, TimerHandle } from '../clock.ts';
import type { PaymentMethod } from '../payments/gateway.ts';
import type { Logger } from '../log.ts';
import { CAPTURE_FIELDS } from '../../flows/capture.machine.ts';
import { type Actor, type Desk, DeskError, type DeskEvent, type Principal, type Role } from './desk.ts';
import type { Metrics } from './metrics.ts';
import { collectOpenApi, docsPage } from './openapi.ts';
import { StoreInputError } from '../store/errors.ts';
import { PAYMENT_STATUSES } from '../store/payments.ts';

export interface AuthUser {
  readonly id: string;
  readonly tenantId: string | null;
  readonly username: string;
  readonly role: Role;
  readonly totpEnabled: boolean;
  readonly disabled: boolean;
}

/** What the app needs of the store for logins and keys. */
export interface AuthStore {
  readonly users: {
    verifyPassword(username: string, password: string): Promise<AuthUser | undefined>;
    get(id: string): AuthUser | undefined;
    /** Checks a TOTP code and marks its time step used, so a code works once (PCI DSS 8.5.1). */
    acceptTotp(userId: string, code: string, timeMs: number): boolean;
  };
  readonly sessions: {
    create(userId: string, options: { ttlMs: number; mfaPassed: boolean }): { token: string; csrfToken: string; expiresAt: string };
    get(token: string): { userId: string; csrfToken: string; expiresAt: string; mfaPassed: boolean } | undefined;
    delete(token: string): void;
  };
  readonly apiKeys: { authenticate(key: string): { id: string; tenantId: string; revokedAt: string | null } | undefined };
  readonly audit: { append(e: { actorType: 'user' | 'apiKey' | 'system'; actorId: string | null; tenantId: string | null; action: string; resource: string | null; outcome: 'success' | 'failure'; origin: string; details?: object }): unknown };
}

export interface AppDeps {
  readonly desk: Desk;
  readonly auth: AuthStore;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Serve HTTPS with this certificate and key (PEM); cookies are then marked Secure. */
  readonly https?: { readonly cert: Buffer; readonly key: Buffer };
  /** Origins (besides the page's own) that may frame the agent page: a CRM. */
  readonly frameAncestors?: readonly string[];
  readonly sessionTtlMs?: number;
}

const SESSION_COOKIE = 'hp_session';

/** The host[:port] of an Origin header, or '' when it is not a URL. */
function hostOf(origin: string): string {
  try {
    return new URL(origin).host;
  } catch {
    return '';
  }
}
const LOCKOUT_FAILURES = 10;
const LOCKOUT_MS = 30 * 60_000;
/** Past this many usernames with failures, expired entries are dropped at the next login. */
const MAX_TRACKED_FAILURES = 10_000;
const PING_MS = 25_000;
/** How often an open stream's login or key is checked again while events go out. */
const RECHECK_MS = 1_000;
/** Stored events read at a time when a stream resumes. */
const REPLAY_PAGE = 1000;
/** A resuming stream waits while more than this is queued for its client, checking every REPLAY_WAIT_MS. */
const REPLAY_MAX_BUFFERED_BYTES = 1024 * 1024;
const REPLAY_WAIT_MS = 20;

// ---------------------------------------------------------------------------------------------
// schemas
// ---------------------------------------------------------------------------------------------

const errorSchema = { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } }, required: ['error'] } as const;
const methodSchema = {
  type: 'object',
  properties: { kind: { type: 'string', enum: ['lump', 'installments', 'bonus-lump', 'revolving'] }, count: { type: 'integer', minimum: 2, maximum: 99 } },
  required: ['kind'],
  additionalProperties: false,
} as const;
const resultSchema = {
  type: 'object',
  properties: Object.fromEntries(
    ['gateway', 'operation', 'status', 'reason', 'resultCode', 'detailCode', 'message', 'transactionId', 'approvalNumber', 'gatewayErrorCode', 'gatewayErrorMessage', 'requestedAt', 'respondedAt', 'token', 'brand', 'last4', 'currency'].map((k) => [k, { type: 'string' }]).concat([['amount', { type: 'integer' }]]),
  ),
} as const;
const paymentSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    callId: { type: 'string' },
    tenantId: { type: 'string' },
    status: { type: 'string', enum: [...PAYMENT_STATUSES] },
    operation: { type: 'string' },
    amount: { type: ['object', 'null'], properties: { value: { type: 'integer' }, currency: { type: 'string' } } },
    method: { type: ['object', 'null'], properties: { kind: { type: 'string' }, count: { type: 'integer' } } },
    orderId: { type: 'string' },
    fields: { type: 'array', items: { type: 'string' } },
    brand: { type: ['string', 'null'] },
    last4: { type: ['string', 'null'] },
    progress: { type: 'object', additionalProperties: { type: 'object', properties: { entered: { type: 'integer' }, expected: { type: 'integer' }, valid: { type: 'boolean' } } } },
    result: { anyOf: [resultSchema, { type: 'null' }] },
    failure: { type: ['string', 'null'] },
    error: { type: ['string', 'null'] },
    statusCallback: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;
const callSchema = {
  type: 'object',
  properties: { id: { type: 'string' }, tenantId: { type: 'string' }, state: { type: 'string' }, caller: { type: ['string', 'null'] }, called: { type: ['string', 'null'] }, startedAt: { type: 'string' }, agentUserId: { type: ['string', 'null'] }, paymentId: { type: ['string', 'null'] } },
} as const;
const userSchema = { type: 'object', properties: { id: { type: 'string' }, username: { type: 'string' }, role: { type: 'string' }, tenantId: { type: ['string', 'null'] } } } as const;
const idParam = (name: string) => ({ type: 'object', properties: { [name]: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } }, required: [name] }) as const;
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 422: errorSchema, 429: errorSchema } as const;

/** A request's payment method as the desk takes it; instalments need their count (2 or more). */
function methodOf(body: { kind: PaymentMethod['kind']; count?: number } | undefined): PaymentMethod | undefined {
  if (!body) return undefined;
  if (body.kind !== 'installments') return { kind: body.kind };
  if (body.count === undefined || body.count < 2) throw new DeskError(422, 'installments_count_required', 'instalments need a count of 2 or more');
  return { kind: 'installments', count: body.count };
}

// ---------------------------------------------------------------------------------------------
// the app
// ---------------------------------------------------------------------------------------------

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // ajv: an unknown field is an error, not silently dropped (a client sending cardNumber learns at once)
  const secureCookies = deps.https !== undefined;
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, trustProxy: false, ...(deps.https ? { https: { cert: deps.https.cert, key: deps.https.key, minVersion: 'TLSv1.2' as const } } : {}), ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } } });
  const openapi = collectOpenApi(app, { title: 'hushpay API', version: '1' });
  await app.register(websocket, { options: { maxPayload: 4096 } });
  const { desk, auth, clock } = deps;
  const failures = new Map<string, { count: number; since: number }>();
  /** Open event streams by session token, so a logout closes them at once. */
  const streamsOf = new Map<string, Set<() => void>>();
  const pageFile = (name: string): string => readFileSync(new URL(`./page/${name}`, import.meta.url), 'utf8');

  // ---- who is asking -------------------------------------------------------------------------

  const cookies = (req: FastifyRequest): Map<string, string> => {
    const out = new Map<string, string>();
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const at = part.indexOf('=');
      if (at <= 0) continue;
      // another app on the host may set a cookie that is not valid percent-encoding: skip it
      try {
        out.set(part.slice(0, at).trim(), decodeURIComponent(part.slice(at + 1).trim()));
      } catch {
        continue;
      }
    }
    return out;
  };

  type Who = { principal: Principal; csrf: string | undefined; token: string | undefined };
  /** Who each authenticated request is, by its raw request (set by `authenticate`). */
  const whoOf = new WeakMap<object, Who>();
  const known = (req: FastifyRequest): Who => whoOf.get(req.raw)!;
  const who = (req: FastifyRequest): Who | undefined => {
    const bearer = /^Bearer (hpk_[A-Za-z0-9_-]{20,100})$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) {
      const key = auth.apiKeys.authenticate(bearer);
      return key && !key.revokedAt ? { principal: { kind: 'apiKey', keyId: key.id, tenantId: key.tenantId }, csrf: undefined, token: undefined } : undefined;
    }
    const token = cookies(req).get(SESSION_COOKIE);
    if (!token) return undefined;
    const session = auth.sessions.get(token);
    if (!session) return undefined;
    const user = auth.users.get(session.userId);
    if (!user || user.disabled || ((user.role === 'admin' || user.totpEnabled) && !session.mfaPassed)) return undefined;
    return { principal: { kind: 'user', userId: user.id, username: user.username, role: user.role, tenantId: user.tenantId }, csrf: session.csrfToken, token };
  };

  const actorOf = (req: FastifyRequest): Actor => ({ principal: known(req).principal, origin: req.ip });

  /** Requires a login or a key; a browser's change must carry its CSRF token. */
  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const w = who(req);
    if (!w) return void reply.code(401).send({ error: { code: 'unauthenticated', message: 'log in, or send an API key' } });
    if (w.csrf !== undefined && req.method !== 'GET' && req.headers['x-csrf-token'] !== w.csrf) {
      return void reply.code(403).send({ error: { code: 'csrf', message: 'missing or wrong X-CSRF-Token' } });
    }
    whoOf.set(req.raw, w);
  };

  // ---- errors ---------------------------------------------------------------------------------

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof DeskError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    // the store's input errors name a field and a rule, never a value
    if (err instanceof StoreInputError) return reply.code(400).send({ error: { code: 'invalid_request', message: err.message } });
    if (err.validation) return reply.code(400).send({ error: { code: 'invalid_request', message: err.message } });
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: { code: err.statusCode === 413 ? 'body_too_large' : 'bad_request', message: err.statusCode === 413 ? 'the request body is too large' : 'the request could not be read' } });
    deps.logger.error({ route: req.routeOptions.url, err: { name: err.name } }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: 'something went wrong on our side' } });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: { code: 'not_found', message: 'no such route' } }));

  // ---- the page -------------------------------------------------------------------------------

  const frame = ["'self'", ...(deps.frameAncestors ?? [])].join(' ');
  const pageHeaders = {
    'content-security-policy': `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors ${frame}; base-uri 'none'; form-action 'self'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };
  for (const [path, file, type] of [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/app.css', 'app.css', 'text/css; charset=utf-8'],
  ] as const) {
    app.get(path, { schema: { hide: true } as object }, async (_req, reply) => reply.headers({ ...pageHeaders, 'content-type': type }).send(pageFile(file)));
  }

  app.get(
    '/v1/page-config',
    { schema: { summary: 'What the agent page needs before login: the CRM origins it may talk to', tags: ['page'], response: { 200: { type: 'object', properties: { frameAncestors: { type: 'array', items: { type: 'string' } } } } } } },
    async () => ({ frameAncestors: [...(deps.frameAncestors ?? [])] }),
  );

  // ---- auth -----------------------------------------------------------------------------------

  app.post(
    '/v1/auth/login',
    {
      schema: {
        summary: 'Log in (a browser): sets the session cookie, returns the CSRF token',
        tags: ['auth'],
        body: { type: 'object', properties: { username: { type: 'string', minLength: 1, maxLength: 100 }, password: { type: 'string', minLength: 1, maxLength: 200 }, totp: { type: 'string', pattern: '^[0-9]{6}$' } }, required: ['username', 'password'], additionalProperties: false },
        response: { 200: { type: 'object', properties: { user: userSchema, csrfToken: { type: 'string' } } }, ...errors },
      },
    },
    async (req, reply) => {
      const { username: typed, password, totp } = req.body as { username: string; password: string; totp?: string };
      // usernames are case-insensitive: one count per account, however it is typed
      const username = typed.trim().toLowerCase();
      const now = clock.now();
      if (failures.size > MAX_TRACKED_FAILURES) for (const [name, entry] of failures) if (now - entry.since >= LOCKOUT_MS) failures.delete(name);
      const earlier = failures.get(username);
      const window = earlier && now - earlier.since < LOCKOUT_MS ? earlier : undefined;
      // the attempt counts before the password is checked (an await): attempts sent side by
      // side cannot all read the same count; a success takes it back
      failures.set(username, { count: (window?.count ?? 0) + 1, since: window?.since ?? now });
      const fail = (code: string, message: string, status: 401 | 403 | 429 = 401) => {
        // what was typed as a username may be a password pasted in the wrong box: the audit
        // log (which is never pruned) keeps a hash of it, enough to match an account by
        auth.audit.append({ actorType: 'system', actorId: null, tenantId: null, action: 'auth.login', resource: null, outcome: 'failure', origin: req.ip, details: { code, usernameSha256: createHash('sha256').update(username).digest('hex').slice(0, 16) } });
        return reply.code(status).send({ error: { code, message } });
      };
      if (window && window.count >= LOCKOUT_FAILURES) return fail('locked', 'too many failed logins; try again later', 429);
      const user = await auth.users.verifyPassword(username, password);
      if (!user || user.disabled) return fail('bad_credentials', 'wrong username or password');
      let mfaPassed = false;
      // admins always (PCI DSS 8.4.1); anyone else who has enrolled a second factor too
      if (user.role === 'admin' || user.totpEnabled) {
        if (!user.totpEnabled) return fail('totp_not_enrolled', 'an admin needs a second factor: create admins with hushpay users add, which enrols one', 403);
        if (!totp) return fail('totp_required', 'enter the code from your authenticator app');
        if (!auth.users.acceptTotp(user.id, totp, clock.wallMs())) return fail('bad_totp', 'that code is not right');
        mfaPassed = true;
      }
      failures.delete(username);
      const session = auth.sessions.create(user.id, { ttlMs: deps.sessionTtlMs ?? 8 * 3_600_000, mfaPassed });
      auth.audit.append({ actorType: 'user', actorId: user.id, tenantId: user.tenantId, action: 'auth.login', resource: `user:${user.id}`, outcome: 'success', origin: req.ip });
      const maxAge = Math.floor((Date.parse(session.expiresAt) - clock.wallMs()) / 1000);
      reply.header('set-cookie', `${SESSION_COOKIE}=${session.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${secureCookies ? '; Secure' : ''}`);
      return { user: { id: user.id, username: user.username, role: user.role, tenantId: user.tenantId }, csrfToken: session.csrfToken };
    },
  );

  app.post('/v1/auth/logout', { preHandler: authenticate, schema: { summary: 'Log out', tags: ['auth'], response: { 204: { type: 'null' }, ...errors } } }, async (req, reply) => {
    const w = known(req);
    if (w.token) {
      auth.sessions.delete(w.token);
      for (const close of [...(streamsOf.get(w.token) ?? [])]) close();
      streamsOf.delete(w.token);
    }
    const p = w.principal;
    auth.audit.append({ actorType: p.kind, actorId: p.kind === 'user' ? p.userId : p.keyId, tenantId: p.tenantId, action: 'auth.logout', resource: p.kind === 'user' ? `user:${p.userId}` : `apiKey:${p.keyId}`, outcome: 'success', origin: req.ip });
    reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secureCookies ? '; Secure' : ''}`);
    return reply.code(204).send();
  });

  app.get('/v1/auth/me', { preHandler: authenticate, schema: { summary: 'Who is logged in, and the CSRF token', tags: ['auth'], response: { 200: { type: 'object', properties: { user: userSchema, csrfToken: { type: ['string', 'null'] } } }, ...errors } } }, async (req) => {
    const w = known(req);
    const p = w.principal;
    return { user: p.kind === 'user' ? { id: p.userId, username: p.username, role: p.role, tenantId: p.tenantId } : { id: p.keyId, username: 'api key', role: 'integration', tenantId: p.tenantId }, csrfToken: w.csrf ?? null };
  });

  // ---- calls ----------------------------------------------------------------------------------

  app.get('/v1/calls', { preHandler: authenticate, schema: { summary: 'The live calls you may see', tags: ['calls'], response: { 200: { type: 'object', properties: { calls: { type: 'array', items: callSchema } } }, ...errors } } }, async (req) => ({ calls: desk.calls(actorOf(req).principal) }));

  app.post('/v1/calls/:callId/claim', { preHandler: authenticate, schema: { summary: 'Take a call onto your desk (by the id the PBX showed you)', tags: ['calls'], params: idParam('callId'), response: { 200: callSchema, ...errors } } }, async (req) => desk.claim(actorOf(req), (req.params as { callId: string }).callId));

  app.post(
    '/v1/calls/:callId/assign',
    { preHandler: authenticate, schema: { summary: 'Put a call on an agent’s desk (supervisors, admins, integrations)', tags: ['calls'], params: idParam('callId'), body: { type: 'object', properties: { userId: { type: 'string', minLength: 1, maxLength: 64 } }, required: ['userId'], additionalProperties: false }, response: { 200: callSchema, ...errors } } },
    async (req) => desk.assign(actorOf(req), (req.params as { callId: string }).callId, (req.body as { userId: string }).userId),
  );

  // ---- payments -------------------------------------------------------------------------------

  app.post(
    '/v1/calls/:callId/payments',
    {
      preHandler: authenticate,
      schema: {
        summary: 'Start a payment on a live call',
        description: 'The caller hears the prompts and keys the card; progress arrives on /v1/events. The same idempotency key answers the same payment.',
        tags: ['payments'],
        params: idParam('callId'),
        body: {
          type: 'object',
          properties: {
            idempotencyKey: { type: 'string', minLength: 1, maxLength: 255 },
            operation: { type: 'string', enum: ['sale', 'authorize', 'verify', 'store'], default: 'sale' },
            amount: { type: 'integer', minimum: 1, maximum: 99_999_999_999, description: "in the currency's minor unit (JPY: yen)" },
            currency: { type: 'string', pattern: '^[A-Za-z]{3}$' },
            method: methodSchema,
            fields: { type: 'array', items: { type: 'string', enum: [...CAPTURE_FIELDS] }, minItems: 2, uniqueItems: true },
            tokenType: { type: 'string', enum: ['one-time', 'reusable'] },
            memberId: { type: 'string', minLength: 1, maxLength: 60 },
            orderId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,27}$' },
            statusCallback: { type: 'string', maxLength: 2048, pattern: '^https?://[^\\s/?#]+', description: "also POST this payment's events here, signed like the tenant's webhooks (Standard Webhooks)" },
          },
          required: ['idempotencyKey'],
          additionalProperties: false,
        },
        response: { 200: paymentSchema, 201: paymentSchema, ...errors },
      },
    },
    async (req, reply) => {
      const body = req.body as { idempotencyKey: string; operation: 'sale' | 'authorize' | 'verify' | 'store'; amount?: number; currency?: string; method?: { kind: 'lump' | 'installments' | 'bonus-lump' | 'revolving'; count?: number }; fields?: (typeof CAPTURE_FIELDS)[number][]; tokenType?: string; memberId?: string; orderId?: string; statusCallback?: string };
      const method = methodOf(body.method);
      const operation = body.tokenType === 'reusable' && body.operation === 'verify' ? 'store' : body.operation;
      const { record, created } = desk.startPayment(actorOf(req), (req.params as { callId: string }).callId, {
        idempotencyKey: body.idempotencyKey,
        operation,
        ...(body.amount !== undefined ? { amount: body.amount } : {}),
        ...(body.currency !== undefined ? { currency: body.currency } : {}),
        ...(method ? { method } : {}),
        ...(body.fields ? { fields: body.fields } : {}),
        ...(body.memberId ? { memberId: body.memberId } : {}),
        ...(body.orderId ? { orderId: body.orderId } : {}),
        ...(body.statusCallback ? { statusCallback: body.statusCallback } : {}),
      });
      return reply.code(created ? 201 : 200).send(record);
    },
  );

  app.post(
    '/v1/payments/:paymentId',
    {
      preHandler: authenticate,
      schema: {
        summary: 'Re-capture a field, set the method, or complete / cancel the payment',
        tags: ['payments'],
        params: idParam('paymentId'),
        body: {
          type: 'object',
          properties: { capture: { type: 'string', enum: [...CAPTURE_FIELDS] }, status: { type: 'string', enum: ['complete', 'cancel'] }, method: methodSchema, idempotencyKey: { type: 'string', maxLength: 255 } },
          additionalProperties: false,
          minProperties: 1,
        },
        response: { 202: paymentSchema, ...errors },
      },
    },
    async (req, reply) => {
      const body = req.body as { capture?: (typeof CAPTURE_FIELDS)[number]; status?: 'complete' | 'cancel'; method?: { kind: 'lump' | 'installments' | 'bonus-lump' | 'revolving'; count?: number } };
      const method = methodOf(body.method);
      const record = desk.updatePayment(actorOf(req), (req.params as { paymentId: string }).paymentId, { ...(body.capture ? { capture: body.capture } : {}), ...(body.status ? { status: body.status } : {}), ...(method ? { method } : {}) });
      return reply.code(202).send(record);
    },
  );

  app.get('/v1/payments/:paymentId', { preHandler: authenticate, schema: { summary: 'A payment', tags: ['payments'], params: idParam('paymentId'), response: { 200: paymentSchema, ...errors } } }, async (req) => desk.getPayment(actorOf(req).principal, (req.params as { paymentId: string }).paymentId));

  app.get(
    '/v1/payments',
    {
      preHandler: authenticate,
      schema: {
        summary: 'Payments you may see; `format=csv` gives the Japanese order-system fields as CSV',
        tags: ['payments'],
        querystring: {
          type: 'object',
          properties: { from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' }, status: { type: 'string', enum: [...PAYMENT_STATUSES] }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, offset: { type: 'integer', minimum: 0, default: 0 }, format: { type: 'string', enum: ['json', 'csv'], default: 'json' }, header: { type: 'string', enum: ['en', 'ja'], default: 'en', description: 'CSV header row: en (snake_case) or ja (受注システム向けの日本語項目名)' } },
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { payments: { type: 'array', items: paymentSchema } } }, ...errors },
      },
    },
    async (req, reply) => {
      const q = req.query as { from?: string; to?: string; status?: string; limit: number; offset: number; format: 'json' | 'csv'; header: 'en' | 'ja' };
      const rows = desk.listPayments(actorOf(req).principal, { ...(q.from ? { from: q.from } : {}), ...(q.to ? { to: q.to } : {}), ...(q.status ? { status: q.status } : {}), limit: q.limit, offset: q.offset });
      if (q.format === 'csv') return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="payments.csv"').serializer((x: unknown) => String(x)).send(desk.csv(rows, q.header));
      return { payments: rows };
    },
  );

  // ---- events ---------------------------------------------------------------------------------

  app.get(
    '/v1/events',
    {
      websocket: true,
      schema: {
        summary: 'The event stream (WebSocket): your calls’ events, masked; reconnect with ?after=<last id> to miss nothing',
        tags: ['events'],
        querystring: { type: 'object', properties: { after: { type: 'integer', minimum: 0 } }, additionalProperties: false },
      },
      preValidation: async (req, reply) => {
        // a browser's stream must come from hushpay's own page (cross-site WebSocket hijacking)
        const origin = req.headers.origin;
        const w = who(req);
        if (!w) return void reply.code(401).send({ error: { code: 'unauthenticated', message: 'log in, or send an API key' } });
        if (w.csrf !== undefined && origin !== undefined && hostOf(origin) !== req.headers.host) return void reply.code(403).send({ error: { code: 'origin', message: 'the stream is for hushpay’s own page' } });
        whoOf.set(req.raw, w);
      },
    },
    (socket, req) => {
      const w = known(req);
      const principal = w.principal;
      let last = Number((req.query as { after?: number }).after ?? Number.NaN);
      // an id past the newest (a store restored or replaced) would silence the stream: start at the newest
      if (Number.isFinite(last)) last = Math.min(last, desk.lastEventId());
      const pending: DeskEvent[] = [];
      let replaying = true;
      let checkedAt = clock.now();
      let ping: TimerHandle | undefined;
      let ended = false;
      const end = (code: number, reason: string): void => {
        if (ended) return;
        ended = true;
        desk.off('event', onEvent);
        if (ping !== undefined) clock.clearTimeout(ping);
        ping = undefined;
        if (w.token) streamsOf.get(w.token)?.delete(closeForLogout);
        socket.close(code, reason);
      };
      const closeForLogout = (): void => end(4401, 'logged out');
      // the login or key may end while the stream is open (logout, expiry, a disabled user, a
      // revoked key): checked at most once a second as events go out, and at every ping
      const stillAllowed = (): boolean => {
        checkedAt = clock.now();
        if (who(req) !== undefined) return true;
        end(4401, 'the login or key has ended');
        return false;
      };
      const send = (e: DeskEvent): void => {
        if (ended || e.id <= last) return;
        if (clock.now() - checkedAt >= RECHECK_MS && !stillAllowed()) return;
        last = e.id;
        socket.send(JSON.stringify({ id: e.id, at: e.at, type: e.type, callId: e.callId, paymentId: e.paymentId, data: e.data }));
      };
      function onEvent(e: DeskEvent): void {
        if (!desk.canSee(principal, e.tenantId, e.agentUserId)) return;
        if (replaying) pending.push(e);
        else send(e);
      }
      // cleanup is in place before anything can fail
      socket.on('close', () => end(1000, ''));
      socket.on('message', () => undefined); // the stream is one way; a client's messages are ignored
      if (w.token) {
        const set = streamsOf.get(w.token) ?? new Set<() => void>();
        set.add(closeForLogout);
        streamsOf.set(w.token, set);
      }
      desk.on('event', onEvent);
      // live events are held while the stored ones after `after` are sent, page by page until
      // none is left, so none is missed or doubled. Between pages the event loop (which also
      // relays the calls' media) runs, and a client that reads slowly is waited for.
      const replay = async (): Promise<void> => {
        if (Number.isFinite(last)) {
          for (;;) {
            const page = desk.eventsAfter(principal, last, REPLAY_PAGE);
            for (const e of page) send(e);
            if (page.length < REPLAY_PAGE || ended) break;
            await new Promise<void>((resolve) => setImmediate(resolve));
            while (!ended && socket.bufferedAmount > REPLAY_MAX_BUFFERED_BYTES) await new Promise<void>((resolve) => clock.setTimeout(resolve, REPLAY_WAIT_MS));
          }
        } else last = desk.lastEventId();
        replaying = false;
        for (const e of pending.splice(0)) send(e);
      };
      replay().catch((err: unknown) => {
        deps.logger.error({ err: { name: (err as Error).name } }, 'event stream replay failed');
        end(1011, 'replay failed');
      });
      const keepAlive = (): void => {
        ping = clock.setTimeout(() => {
          if (!stillAllowed()) return;
          socket.ping();
          keepAlive();
        }, PING_MS);
      };
      keepAlive();
    },
  );

  // ---- docs and metrics -----------------------------------------------------------------------

  app.get('/docs/openapi.json', { schema: { hide: true } as object }, async () => openapi());
  app.get('/docs', { schema: { hide: true } as object }, async (_req, reply) => reply.headers({ ...pageHeaders, 'content-type': 'text/html; charset=utf-8' }).send(docsPage(openapi())));
  app.get('/metrics', { schema: { hide: true } as object }, async (_req, reply) => reply.header('content-type', 'text/plain; version=0.0.4').send(deps.metrics.render()));
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['ops'], response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }));

  return app;
}
