/**
 * SIP over TLS (RFC 3261 §26.2, RFC 5630): the transport's TLS listener and outbound TLS
 * connections, the user agent's `SIP/2.0/TLS` Via and `;transport=tls` Contact, and the
 * embedded port started from certificate files. Real sockets on loopback, real node:tls clients.
 *
 * The certificate is made at test time with `openssl` (test/sip/certs.ts) in a temporary folder,
 * deleted afterwards; no key material is committed. Without `openssl` these tests skip.
 */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock, systemClock } from '../../src/clock.ts';
import { ConfigError } from '../../src/errors.ts';
import { EmbeddedSipPort } from '../../src/sip/embedded.ts';
import type { PortDialog } from '../../src/sip/port.ts';
import { parseSipMessage, parseVia, type SipMessage, tagOf } from '../../src/sip/message.ts';
import type { SipAddress } from '../../src/sip/transport.ts';
import { SipStreamFramer, type SipTlsOptions, UdpTcpTransport, type UdpTcpTransportOptions } from '../../src/sip/transport-udp-tcp.ts';
import { fuzzMessages } from '../support/sipFuzz.ts';
import { hasOpenssl, makeTestCerts, type TestCerts } from './certs.ts';
import { socketHandles, TinyUas, until } from './support.ts';

const enc = new TextEncoder();
const HOST = '127.0.0.1';
let certs: TestCerts;
let nextCall = 1;

/** A request as text, sent over TLS: its top Via says so. */
function request(method: string, opts: { callId?: string; cseq?: number; toTag?: string; extra?: string[]; body?: string } = {}): string {
  const callId = opts.callId ?? `tls-call-${nextCall++}`;
  const body = opts.body ?? '';
  const lines = [
    `${method} sip:hushpay@${HOST} SIP/2.0`,
    `Via: SIP/2.0/TLS client.invalid:5061;rport;branch=z9hG4bK${callId}-${method}-${opts.cseq ?? 1}`,
    'Max-Forwards: 70',
    `To: <sip:hushpay@${HOST}>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    'From: <sip:tester@client.invalid>;tag=t1',
    `Call-ID: ${callId}`,
    `CSeq: ${opts.cseq ?? 1} ${method}`,
    ...(opts.extra ?? []),
    `Content-Length: ${enc.encode(body).length}`,
  ];
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

const SDP = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n');

/** Answers OPTIONS with 200 and sends the 400s it is offered (test/sip/transport.test.ts's TinyUas). */
const open: { close(): Promise<void> | void }[] = [];

function tlsOptions(overrides: Partial<SipTlsOptions> = {}): SipTlsOptions {
  return { port: 0, cert: certs.cert, key: certs.key, ca: certs.cert, ...overrides };
}

async function listen(overrides: Partial<UdpTcpTransportOptions> = {}): Promise<{ transport: UdpTcpTransport; uas: TinyUas; tlsPort: number }> {
  const uas = new TinyUas();
  const transport = await UdpTcpTransport.listen({ host: HOST, port: 0, listener: uas, tls: tlsOptions(), ...overrides });
  uas.transport = transport;
  open.push(transport);
  return { transport, uas, tlsPort: transport.local.tls?.port ?? 0 };
}

/** A SIP client over TLS (node:tls), verifying the server's certificate against the test CA. */
class TlsPeer {
  readonly framer = new SipStreamFramer();
  readonly received: SipMessage[] = [];
  closed = false;
  readonly socket: tls.TLSSocket;

  private constructor(port: number) {
    this.socket = tls.connect({ host: HOST, port, ca: certs.cert });
    this.socket.on('data', (chunk: Buffer) => {
      for (const out of this.framer.push(chunk)) if (out.kind === 'message') this.received.push(parseSipMessage(out.bytes, 'tls'));
    });
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<TlsPeer> {
    const peer = new TlsPeer(port);
    open.push(peer);
    await new Promise((resolve) => peer.socket.once('secureConnect', resolve));
    return peer;
  }

  write(bytes: string): Promise<void> {
    return new Promise((resolve) => this.socket.write(enc.encode(bytes), () => resolve()));
  }

  #read = 0;

  /** The next message not yet read (in arrival order). */
  async next(): Promise<SipMessage> {
    await until(() => this.received.length > this.#read, 'a TLS reply');
    return this.received[this.#read++]!;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}

let baseline: Record<string, number> = {};

beforeAll(() => {
  if (hasOpenssl) certs = makeTestCerts();
});

afterAll(() => certs?.remove());

beforeEach(() => {
  baseline = socketHandles();
});

afterEach(async () => {
  const closing = open.splice(0).reverse();
  for (const o of closing) await o.close();
  await until(() => JSON.stringify(socketHandles()) === JSON.stringify(baseline), 'sockets to close', 1_000).catch(() => undefined);
  expect(socketHandles()).toEqual(baseline);
});

describe.skipIf(!hasOpenssl)('UdpTcpTransport over TLS', () => {
  it('listens for TLS on its own port beside UDP and TCP, and says TLS is reliable', async () => {
    const { transport, tlsPort } = await listen();
    expect(transport.local.tls).toEqual({ host: HOST, port: tlsPort });
    expect(tlsPort).not.toBe(transport.local.tcp?.port);
    expect(transport.reliable('tls')).toBe(true);
  });

  it('answers an OPTIONS from a node:tls client on the same connection, its Via SIP/2.0/TLS stamped', async () => {
    const { transport, uas, tlsPort } = await listen();
    const client = await TlsPeer.open(tlsPort);
    expect(client.socket.authorized).toBe(true); // the client verified our certificate
    await client.write(request('OPTIONS', { callId: 'o1' }));
    const reply = await client.next();
    expect(reply).toMatchObject({ kind: 'response', status: 200 });
    const via = parseVia(reply.headers.getAll('Via')[0]!);
    expect(via.transport).toBe('TLS');
    expect(via.params.get('received')).toBe(HOST);
    expect(via.params.get('rport')).toBe(String(client.socket.localPort));
    const { from } = uas.messages[0]!;
    expect(from).toMatchObject({ transport: 'tls', host: HOST, port: client.socket.localPort });
    expect(transport.connectionIds()).toEqual([from.connection]);
    expect(from.connection).toMatch(/^tls-/);
    expect(transport.stats()).toMatchObject({ received: { tls: 1, tcp: 0, udp: 0 }, sent: { tls: 1, tcp: 0, udp: 0 } });
  });

  it('offers a 400 for a well-framed malformed request and keeps the connection, as over TCP', async () => {
    const { tlsPort } = await listen();
    const client = await TlsPeer.open(tlsPort);
    await client.write(request('OPTIONS', { callId: 'bad' }).replace('CSeq: 1 OPTIONS', 'CSeq: 1 BYE'));
    expect(await client.next()).toMatchObject({ status: 400 });
    await client.write(request('OPTIONS', { callId: 'good' }));
    expect(await client.next()).toMatchObject({ status: 200 });
    expect(client.closed).toBe(false);
  });

  it.each([
    ['no Content-Length', request('OPTIONS').replace('Content-Length: 0\r\n', ''), 400, 'no Content-Length on a stream transport'],
    ['a frame over the maximum', request('OPTIONS').replace('Content-Length: 0', 'Content-Length: 100000'), 400, 'message too large'],
    ['a header section over the maximum without a blank line', `OPTIONS sip:x@y SIP/2.0\r\n${'X-Pad: y\r\n'.repeat(1000)}`, undefined, 'header section too large'],
  ])('closes the connection on %s after sending any 400, as over TCP', async (_name, text, status, reason) => {
    const { transport, uas, tlsPort } = await listen({ maxMessageBytes: 4096 });
    const client = await TlsPeer.open(tlsPort);
    await client.write(text);
    await until(() => client.closed, 'the server to close the connection');
    expect(client.received.map((m) => (m.kind === 'response' ? m.status : 0))).toEqual(status ? [status] : []);
    expect(uas.malformedSeen.map((m) => m.reason)).toEqual([reason]);
    expect(uas.malformedSeen[0]!.from.transport).toBe('tls');
    expect(transport.stats().dropped.tcpFraming).toBe(1);
    await until(() => transport.connectionIds().length === 0, 'the connection to be forgotten');
  });

  it('refuses a plain-TCP client on the TLS port: no SIP delivered, nothing answered, the connection closed and counted', async () => {
    const { transport, uas, tlsPort } = await listen();
    const plain = net.connect({ host: HOST, port: tlsPort });
    let answered = '';
    let closed = false;
    plain.on('data', (chunk: Buffer) => (answered += chunk.toString('latin1')));
    plain.on('error', () => undefined);
    plain.on('close', () => (closed = true));
    open.push({ close: () => void plain.destroy() });
    await new Promise((resolve) => plain.once('connect', resolve));
    plain.write(request('OPTIONS', { callId: 'plain' }));
    await until(() => closed, 'the TLS port to close the plain connection');
    expect(answered).not.toContain('SIP/2.0');
    expect(uas.messages).toHaveLength(0);
    expect(uas.malformedSeen).toHaveLength(0);
    await until(() => transport.stats().dropped.tlsHandshake === 1, 'the failed handshake to be counted');
    expect(transport.stats().dropped.internal).toBe(0);
    // and the port still serves TLS
    const client = await TlsPeer.open(tlsPort);
    await client.write(request('OPTIONS', { callId: 'after' }));
    expect(await client.next()).toMatchObject({ status: 200 });
  });

  it('counts TLS connections against the same limit as TCP ones', async () => {
    const { transport, tlsPort } = await listen({ maxTcpConnections: 1 });
    const tcp = net.connect({ host: HOST, port: transport.local.tcp!.port });
    tcp.on('error', () => undefined);
    open.push({ close: () => void tcp.destroy() });
    await new Promise((resolve) => tcp.once('connect', resolve));
    await until(() => transport.stats().connections.open === 1, 'the TCP connection');
    const refused = tls.connect({ host: HOST, port: tlsPort, ca: certs.cert });
    let closed = false;
    refused.on('error', () => undefined);
    refused.on('close', () => (closed = true));
    open.push({ close: () => void refused.destroy() });
    await until(() => closed, 'the TLS connection to be refused');
    expect(transport.stats().dropped.connectionLimit).toBe(1);
    expect(transport.stats().connections.open).toBe(1);
  });

  it('two transports talk TLS: a request over a new verified connection, the answer back on it', async () => {
    const a = await listen({ udp: false, tcp: false });
    const b = await listen({ udp: false, tcp: false });
    expect(a.transport.local).toEqual({ udp: undefined, tcp: undefined, tls: { host: HOST, port: a.tlsPort } });
    const req = parseSipMessage(enc.encode(request('OPTIONS', { callId: 'ab' })), 'tls');
    a.transport.send(req, { transport: 'tls', host: HOST, port: b.tlsPort });
    await until(() => a.uas.messages.some((m) => m.message.kind === 'response'), 'the answer');
    const answer = a.uas.messages.find((m) => m.message.kind === 'response')!;
    expect(answer.message).toMatchObject({ status: 200 });
    expect(answer.from.transport).toBe('tls');
    expect(b.uas.messages[0]!.from.transport).toBe('tls');
    expect(a.transport.stats().connections).toMatchObject({ open: 1, opened: 1 });
    expect(b.transport.stats().connections).toMatchObject({ open: 1, opened: 1 });
    // a second send reuses the connection
    a.transport.send(parseSipMessage(enc.encode(request('OPTIONS', { callId: 'ab2' })), 'tls'), { transport: 'tls', host: HOST, port: b.tlsPort });
    await until(() => a.uas.messages.filter((m) => m.message.kind === 'response').length === 2, 'the second answer');
    expect(a.transport.stats().connections.opened).toBe(1);
  });

  it('does not reuse a TCP connection to the same address for a TLS send, or the other way round', async () => {
    const a = await listen();
    const b = await listen();
    const req = (id: string): SipMessage => parseSipMessage(enc.encode(request('OPTIONS', { callId: id })), 'tcp');
    a.transport.send(req('t1'), { transport: 'tcp', host: HOST, port: b.transport.local.tcp!.port });
    await until(() => a.uas.messages.length === 1, 'the TCP answer');
    a.transport.send(req('t2'), { transport: 'tls', host: HOST, port: b.tlsPort });
    await until(() => a.uas.messages.length === 2, 'the TLS answer');
    expect(a.uas.messages.map((m) => m.from.transport)).toEqual(['tcp', 'tls']);
    expect(a.transport.connectionIds().map((id) => id.split('-')[0]).sort()).toEqual(['tcp', 'tls']);
  });

  it.each([
    ['a certificate no trusted CA signed (the system CAs)', { ca: undefined }, undefined],
    ['a certificate for another name', {}, 'wrong.invalid'],
  ])('refuses to send to a peer with %s: the handshake fails, the queued messages are counted', async (_name, clientTls, servername) => {
    const server = await listen();
    const client = await listen({ tls: tlsOptions(clientTls), connectTimeoutMs: 2_000 });
    const req = parseSipMessage(enc.encode(request('OPTIONS')), 'tls');
    const to: SipAddress = servername ? { transport: 'tls', host: HOST, port: server.tlsPort, servername } : { transport: 'tls', host: HOST, port: server.tlsPort };
    client.transport.send(req, to);
    client.transport.send(req, to);
    await until(() => client.transport.stats().dropped.sendSocket === 2, 'the failed connection');
    expect(client.transport.stats().dropped.tlsHandshake).toBe(1);
    expect(server.uas.messages).toHaveLength(0);
    await until(() => client.transport.connectionIds().length === 0, 'the connection to be forgotten');
  });

  it('checks the name the URI gave (servername) against the certificate', async () => {
    const server = await listen();
    const client = await listen();
    const req = parseSipMessage(enc.encode(request('OPTIONS')), 'tls');
    client.transport.send(req, { transport: 'tls', host: HOST, port: server.tlsPort, servername: 'localhost' });
    await until(() => client.uas.messages.length === 1, 'the answer');
    expect(client.uas.messages[0]!.message).toMatchObject({ status: 200 });
  });

  it('skips verification only when a test asks (insecureSkipVerify)', async () => {
    const stranger = await listen({ tls: tlsOptions({ cert: readStranger().cert, key: readStranger().key }) });
    const client = await listen({ tls: tlsOptions({ insecureSkipVerify: true }) });
    client.transport.send(parseSipMessage(enc.encode(request('OPTIONS')), 'tls'), { transport: 'tls', host: HOST, port: stranger.tlsPort });
    await until(() => client.uas.messages.length === 1, 'the answer');
    expect(client.transport.stats().dropped.tlsHandshake).toBe(0);
  });

  it('drops (and counts) a send to a TLS address when TLS is off', async () => {
    const { transport } = await listen({ tls: undefined });
    expect(transport.local.tls).toBeUndefined();
    transport.send(parseSipMessage(enc.encode(request('OPTIONS')), 'tls'), { transport: 'tls', host: HOST, port: 5061 });
    expect(transport.stats().dropped.sendUnavailable).toBe(1);
  });

  it('closes a TLS connection idle for idleTcpTimeoutMs (fake clock)', async () => {
    const clock = new FakeClock();
    const { transport, tlsPort } = await listen({ clock, idleTcpTimeoutMs: 1_000 });
    const client = await TlsPeer.open(tlsPort);
    await client.write(request('OPTIONS'));
    await client.next();
    clock.advance(1_100);
    await until(() => client.closed, 'the idle close');
    expect(transport.stats().connections).toMatchObject({ open: 0, idleClosed: 1 });
    expect(clock.pending).toBe(0);
  });

  it('close() ends TLS connections and handshakes still under way, and leaves no handle behind', async () => {
    const { transport, tlsPort } = await listen();
    const client = await TlsPeer.open(tlsPort);
    await client.write(request('OPTIONS'));
    await client.next();
    // a TCP connection to the TLS port that never starts its handshake
    const stalled = net.connect({ host: HOST, port: tlsPort });
    let stalledClosed = false;
    stalled.on('error', () => undefined);
    stalled.on('close', () => (stalledClosed = true));
    await new Promise((resolve) => stalled.once('connect', resolve));
    const started = performance.now();
    await transport.close();
    expect(performance.now() - started).toBeLessThan(1_000); // not held up by the stalled handshake
    await until(() => client.closed && stalledClosed, 'the clients to see the close');
    open.splice(0);
  });

  it('takes 1,000 mutated messages as TLS streams without crashing, and still answers OPTIONS', async () => {
    const corpus = fuzzMessages(1_000, 2025);
    const { transport, tlsPort } = await listen();
    let index = 0;
    let connections = 0;
    while (index < corpus.length) {
      connections++;
      const client = await TlsPeer.open(tlsPort);
      for (const m of corpus.slice(index, index + 250)) {
        if (client.closed) break;
        await new Promise<void>((resolve) => client.socket.write(m, () => resolve()));
        await new Promise((resolve) => setImmediate(resolve));
        index++;
      }
      await client.close();
      open.splice(open.indexOf(client), 1);
    }
    const probe = await TlsPeer.open(tlsPort);
    await probe.write(request('OPTIONS', { callId: 'alive' }));
    expect((await probe.next()).headers.get('Call-ID')).toBe('alive');
    expect(connections).toBeGreaterThan(1);
    expect(transport.stats().dropped.internal).toBe(0);
    expect(transport.stats().dropped.listenerThrew).toBe(0);
  });
});

function readStranger(): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(certs.strangerCertFile), key: readFileSync(certs.strangerKeyFile) };
}

describe.skipIf(!hasOpenssl)('EmbeddedSipPort over TLS', () => {
  const start = (overrides: { port?: number; keyFile?: string; certFile?: string } = {}): Promise<EmbeddedSipPort> =>
    EmbeddedSipPort.start({
      host: HOST,
      port: 0,
      udp: true,
      tcp: true,
      tls: { port: overrides.port ?? 0, certFile: overrides.certFile ?? certs.certFile, keyFile: overrides.keyFile ?? certs.keyFile, caFile: certs.certFile },
      clock: systemClock,
      timers: { T1: 100, T2: 800, T4: 1000 },
    }).then((port) => {
      open.push(port);
      return port;
    });

  const tlsPortOf = (port: EmbeddedSipPort): number => Number(port.listening.find((l) => l.startsWith('tls:'))!.split(':')[2]);

  it('lists tls:host:port among where it listens', async () => {
    const port = await start();
    expect(port.listening).toHaveLength(3);
    expect(port.listening[2]).toMatch(/^tls:127\.0\.0\.1:\d+$/);
    expect(tlsPortOf(port)).toBeGreaterThan(0);
  });

  it('answers an INVITE from a TLS client over the same connection: Via SIP/2.0/TLS, Contact ;transport=tls, then ACK and BYE', async () => {
    const port = await start();
    const ended: string[] = [];
    const sources: string[] = [];
    let answered: Promise<void> | undefined;
    port.on('invite', (invite, res) => {
      sources.push(invite.source.transport);
      answered = port.createUAS(invite, res, { localSdp: SDP }).then((dialog) => void dialog.on('destroy', (end) => ended.push(end.by)));
    });
    const client = await TlsPeer.open(tlsPortOf(port));
    await client.write(request('INVITE', { callId: 'inv', extra: ['Contact: <sip:tester@127.0.0.1:5099;transport=tls>', 'Content-Type: application/sdp'], body: SDP }));
    let ok = await client.next();
    while (ok.kind === 'response' && ok.status < 200) ok = await client.next();
    expect(ok).toMatchObject({ kind: 'response', status: 200 });
    expect(parseVia(ok.headers.getAll('Via')[0]!).transport).toBe('TLS');
    expect(ok.headers.get('Contact')).toBe(`<sip:hushpay@127.0.0.1:${tlsPortOf(port)};transport=tls>`);
    const toTag = tagOf(ok.headers.get('To'))!;
    await client.write(request('ACK', { callId: 'inv', toTag }));
    await answered; // createUAS resolves on the ACK
    expect(sources).toEqual(['tls']);
    await client.write(request('BYE', { callId: 'inv', toTag, cseq: 2 }));
    const bye = await client.next();
    expect(bye).toMatchObject({ status: 200 });
    expect(bye.headers.get('CSeq')).toBe('2 BYE');
    await until(() => ended.length === 1, 'the dialog to end');
    expect(ended).toEqual(['remote']);
    expect(port.transportStats.sent.udp + port.transportStats.sent.tcp).toBe(0);
    expect(client.closed).toBe(false);
  });

  it('places and ends a call between two ports over TLS (sip: URI with transport=tls), each verifying the other', async () => {
    const caller = await start();
    const callee = await start();
    const seen: { via: string; contact: string | undefined; transport: string }[] = [];
    const calleeDialogs: Promise<PortDialog>[] = [];
    callee.on('invite', (invite, res) => {
      seen.push({ via: invite.headers.getAll('Via')[0]!, contact: invite.headers.get('Contact'), transport: invite.source.transport });
      calleeDialogs.push(callee.createUAS(invite, res, { localSdp: SDP }));
    });
    const dialog = await caller.createUAC(`sip:agent@127.0.0.1:${tlsPortOf(callee)};transport=tls`, { localSdp: SDP });
    await Promise.all(calleeDialogs);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.via).toMatch(new RegExp(`^SIP/2\\.0/TLS 127\\.0\\.0\\.1:${tlsPortOf(caller)};`));
    expect(seen[0]!.contact).toBe(`<sip:hushpay@127.0.0.1:${tlsPortOf(caller)};transport=tls>`);
    expect(seen[0]!.transport).toBe('tls');
    expect(callee.counts.dialogs).toBe(1);
    // the callee's BYE goes to the caller's Contact: a new TLS connection to the caller's TLS port
    const calleeEnded = new Promise((resolve) => dialog.once('destroy', resolve));
    const [calleeDialog] = await Promise.all(calleeDialogs);
    await calleeDialog!.destroy();
    expect(await calleeEnded).toEqual({ by: 'remote' });
    for (const p of [caller, callee]) {
      const s = p.transportStats;
      expect(s.sent.udp + s.sent.tcp + s.received.udp + s.received.tcp).toBe(0);
      expect(s.sent.tls).toBeGreaterThan(0);
      expect(s.dropped.tlsHandshake).toBe(0);
    }
    expect(callee.transportStats.connections.opened).toBe(2); // the caller's, and its own to the caller
  });

  it('fails to start on a key that does not match the certificate, naming sip.tls.keyFile, and leaves nothing open', async () => {
    const err = await start({ keyFile: certs.otherKeyFile }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe('sip.tls.keyFile');
    expect((err as ConfigError).message).toMatch(/does not match the certificate/);
  });

  it('fails to start on a missing certificate file, naming sip.tls.certFile', async () => {
    const err = await start({ certFile: `${certs.dir}/missing.pem` }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as ConfigError).field).toBe('sip.tls.certFile');
  });

  it('fails to start when the TLS port is taken, with nothing left open', async () => {
    const first = await start();
    const err = await start({ port: tlsPortOf(first) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'EADDRINUSE' });
  });
});
