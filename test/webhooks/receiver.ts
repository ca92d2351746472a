/**
 * A webhook receiver on 127.0.0.1 (port 0) for the dispatcher's tests: records every request
 * (headers and the raw body), and answers each with the next planned reply — a status (with
 * headers), or `'hang'`: never answer, until the client goes away or `close()`.
 */

import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Plan = { readonly status: number; readonly headers?: Readonly<Record<string, string>> } | 'hang';

export interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Resolves when the client's connection for this request closes (e.g. an abort). */
  readonly clientGone: Promise<void>;
}

export class Receiver {
  readonly received: Received[] = [];
  /** Requests being answered now (most at once seen in `maxConcurrent`). */
  open = 0;
  maxConcurrent = 0;
  readonly #plans: Plan[] = [];
  readonly #hanging = new Set<ServerResponse>();
  readonly #waiters: { count: number; resolve: () => void }[] = [];
  #fallback: Plan = { status: 200 };
  readonly #server: Server;
  url = '';

  private constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.open++;
        this.maxConcurrent = Math.max(this.maxConcurrent, this.open);
        const clientGone = new Promise<void>((resolve) => res.once('close', () => resolve()));
        res.once('close', () => this.open--);
        this.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), clientGone });
        const plan = this.#plans.shift() ?? this.#fallback;
        if (plan === 'hang') {
          this.#hanging.add(res);
          res.once('close', () => this.#hanging.delete(res));
        } else {
          res.writeHead(plan.status, { 'content-type': 'text/plain', ...plan.headers }).end('ok');
        }
        for (const w of [...this.#waiters]) {
          if (this.received.length >= w.count) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
    });
  }

  static async start(): Promise<Receiver> {
    const r = new Receiver();
    r.#server.listen(0, '127.0.0.1');
    await once(r.#server, 'listening');
    r.url = `http://127.0.0.1:${(r.#server.address() as AddressInfo).port}/hooks`;
    return r;
  }

  /** Answers the next requests with these, in order; then with the fallback. */
  plan(...plans: Plan[]): void {
    this.#plans.push(...plans);
  }

  /** What requests get once the planned replies are used up (default 200). */
  fallback(plan: Plan): void {
    this.#fallback = plan;
  }

  /** Resolves once `count` requests in all have arrived. */
  arrived(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** Answers every hanging request with `status`. */
  release(status = 200): void {
    for (const res of [...this.#hanging]) res.writeHead(status).end();
    this.#hanging.clear();
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}
