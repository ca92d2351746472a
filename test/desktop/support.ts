/**
 * Test support for the HTTP side: a hushpay with two tenants (acme on number 100, globex on
 * 200) and users of every role, a small HTTP client that keeps a login's cookie and CSRF token,
 * and an event-stream client over a real WebSocket.
 */

import { SimAgent } from '../../sip-sim/index.ts';
import { generateTotpSecret, totpCode } from '../../src/store/totp.ts';
import { type TestHushpay, startTestHushpay } from '../support/hushpay.ts';

export const PASSWORD = 'correct horse battery staple';

export interface Users {
  readonly agentA: string;
  readonly agentB: string;
  readonly supervisor: string;
  readonly globexAgent: string;
  readonly admin: string;
  readonly adminTotp: string;
}

export interface DeskWorld {
  readonly hushpay: TestHushpay;
  readonly agent: SimAgent;
  readonly users: Users;
  readonly base: string;
  close(): Promise<void>;
}

export async function startDeskWorld(options: { raw?: Record<string, unknown>; env?: NodeJS.ProcessEnv; fetch?: typeof fetch } = {}): Promise<DeskWorld> {
  const agent = await SimAgent.listen();
  const payments = { language: 'en', prompts: 'tones' };
  const hushpay = await startTestHushpay({
    pbx: agent.uri('agents'),
    raw: {
      tenants: [
        { id: 'acme', pbx: agent.uri('agents'), numbers: ['100'], payments },
        { id: 'globex', pbx: agent.uri('agents'), numbers: ['200'], payments },
      ],
      ...options.raw,
    },
    ...(options.env ? { env: options.env } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const { users } = hushpay.store;
  const add = async (username: string, role: 'agent' | 'supervisor' | 'admin', tenantId: string | null): Promise<string> => (await users.create({ tenantId, username, role, password: PASSWORD })).id;
  const admin = await add('root', 'admin', null);
  const adminTotp = generateTotpSecret();
  users.setTotpSecret(admin, adminTotp);
  const ids: Users = {
    agentA: await add('aiko', 'agent', 'acme'),
    agentB: await add('ben', 'agent', 'acme'),
    supervisor: await add('sato', 'supervisor', 'acme'),
    globexAgent: await add('gina', 'agent', 'globex'),
    admin,
    adminTotp,
  };
  return {
    hushpay,
    agent,
    users: ids,
    base: hushpay.httpUrl,
    async close() {
      await hushpay.close();
      await agent.close();
    },
  };
}

export { totpCode };

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** Whatever JSON came back (a test reads it freely). */
  readonly json: any;
}

/** A browser's login (cookie + CSRF token) or an integration's API key, over real HTTP. */
export class Client {
  readonly base: string;
  cookie: string | undefined;
  csrf: string | undefined;
  apiKey: string | undefined;
  /** Every body this client received, for the card-data checks. */
  readonly received: string[] = [];

  constructor(base: string, options: { apiKey?: string } = {}) {
    this.base = base;
    this.apiKey = options.apiKey;
  }

  static async login(base: string, username: string, password = PASSWORD, totp?: string): Promise<Client> {
    const c = new Client(base);
    const r = await c.request('POST', '/v1/auth/login', { username, password, ...(totp ? { totp } : {}) });
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
    return c;
  }

  headers(): Record<string, string> {
    return {
      ...(this.cookie ? { cookie: this.cookie } : {}),
      ...(this.csrf ? { 'x-csrf-token': this.csrf } : {}),
      ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
    };
  }

  async request(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Reply> {
    const res = await fetch(this.base + path, {
      method,
      headers: { ...this.headers(), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...extra },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    this.received.push(text);
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0];
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (path === '/v1/auth/login' && res.status === 200) this.csrf = (json as { csrfToken: string }).csrfToken;
    return { status: res.status, headers: res.headers, text, json };
  }

  get = (path: string): Promise<Reply> => this.request('GET', path);
  post = (path: string, body: unknown = {}): Promise<Reply> => this.request('POST', path, body);

  /** Opens the event stream, optionally resuming after an event id. */
  events(after?: number): Promise<EventStream> {
    return EventStream.open(this.base.replace(/^http/, 'ws') + `/v1/events${after !== undefined ? `?after=${after}` : ''}`, { ...this.headers(), origin: this.base });
  }
}

export interface StreamEvent {
  readonly id: number;
  readonly at: string;
  readonly type: string;
  readonly callId: string;
  readonly paymentId: string | null;
  readonly data: Record<string, unknown>;
}

/** A WebSocket client of /v1/events that keeps every event and lets a test wait for one. */
export class EventStream {
  readonly events: StreamEvent[] = [];
  readonly raw: string[] = [];
  /** When (performance.now()) each event arrived, by id. */
  readonly arrivedAt = new Map<number, number>();
  readonly #ws: WebSocket;
  #waiters: { test: (e: StreamEvent) => boolean; resolve: (e: StreamEvent) => void }[] = [];
  readonly closed: Promise<number>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (m) => {
      const text = String(m.data);
      this.raw.push(text);
      const e = JSON.parse(text) as StreamEvent;
      this.arrivedAt.set(e.id, performance.now());
      this.events.push(e);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.test(e)) return true;
        w.resolve(e);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.addEventListener('close', (c) => resolve(c.code)));
  }

  static open(url: string, headers: Record<string, string>): Promise<EventStream> {
    return new Promise((resolve, reject) => {
      // Node's WebSocket (undici) takes headers: the cookie, and the Origin a browser would send
      const ws = new WebSocket(url, { headers } as never);
      const stream = new EventStream(ws);
      ws.addEventListener('open', () => resolve(stream));
      ws.addEventListener('error', () => reject(new Error(`event stream refused: ${url}`)));
    });
  }

  /** The first event (already received or to come) that passes `test`. */
  waitFor(test: (e: StreamEvent) => boolean, timeoutMs = 15_000): Promise<StreamEvent> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such event within ${timeoutMs} ms; got ${this.events.map((e) => e.type).join(', ')}`)), timeoutMs);
      this.#waiters.push({
        test,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  close(): Promise<number> {
    this.#ws.close();
    return this.closed;
  }
}
