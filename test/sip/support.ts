/**
 * Test support for the SIP transport tests (UDP, TCP and TLS): a tiny UAS that answers OPTIONS
 * and sends the 400s it is offered, the response a UAS builds, a wait on a condition, and the
 * socket accounting that proves nothing is left open.
 */

import { SipHeaders, type SipMessage, type SipRequest, type SipResponse, tagOf } from '../../src/sip/message.ts';
import type { SipAddress, SipTransport, TransportListener } from '../../src/sip/transport.ts';

/** RFC 3261 §8.2.6: a response copies Via, From, To (adding a tag), Call-ID and CSeq. */
export function respond(request: SipRequest, status: number, reason: string): SipResponse {
  const headers = new SipHeaders();
  for (const f of request.headers.entries()) if (f.name === 'Via') headers.append('Via', f.value);
  const to = request.headers.get('To')!;
  headers.append('From', request.headers.get('From')!);
  headers.append('To', tagOf(to) ? to : `${to};tag=uas1`);
  headers.append('Call-ID', request.headers.get('Call-ID')!);
  headers.append('CSeq', request.headers.get('CSeq')!);
  return { kind: 'response', status, reason, headers, body: new Uint8Array(0) };
}

/** The listener the tests plug in: answers OPTIONS with 200 and sends the 400s it is offered. */
export class TinyUas implements TransportListener {
  transport: SipTransport | undefined;
  readonly messages: { message: SipMessage; from: SipAddress }[] = [];
  readonly malformedSeen: { reason: string; from: SipAddress; reply: SipMessage | undefined }[] = [];
  #waiters: { predicate: (m: SipMessage) => boolean; resolve: (v: { message: SipMessage; from: SipAddress }) => void }[] = [];

  message(message: SipMessage, from: SipAddress): void {
    this.messages.push({ message, from });
    this.#waiters = this.#waiters.filter((w) => (w.predicate(message) ? (w.resolve({ message, from }), false) : true));
    if (message.kind === 'request' && message.method === 'OPTIONS') this.transport?.send(respond(message, 200, 'OK'), from);
  }

  malformed(reason: string, from: SipAddress, reply: SipMessage | undefined): void {
    this.malformedSeen.push({ reason, from, reply });
    if (reply) this.transport?.send(reply, from);
  }

  next(predicate: (m: SipMessage) => boolean = () => true): Promise<{ message: SipMessage; from: SipAddress }> {
    const seen = this.messages.find((m) => predicate(m.message));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }
}

/** Resolves when `predicate` holds, checking after every turn of the event loop. */
export async function until(predicate: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Sockets and servers this process holds, by kind (stdout/stderr pipes left out). */
export function socketHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) if (/UDP|TCP|TLS/.test(r)) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}
