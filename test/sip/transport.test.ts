import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { InvalidStateError } from '../../src/errors.ts';
import { parseSipMessage, parseVia, serializeSipMessage, type SipMessage, type SipRequest, tagOf } from '../../src/sip/message.ts';
import type { SipAddress } from '../../src/sip/transport.ts';
import { MemoryTransport } from '../../src/sip/transport-memory.ts';
import { type FramerOutput, salvageBadRequest, SipStreamFramer, stampReceived, UdpTcpTransport, type UdpTcpTransportOptions } from '../../src/sip/transport-udp-tcp.ts';
import { assertSurvivesFuzz, fuzzMessages, SIP_SEEDS } from '../support/sipFuzz.ts';
import { respond, socketHandles, TinyUas, until } from './support.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// helpers: messages, a tiny UAS, loopback peers, leak accounting
// ---------------------------------------------------------------------------------------------

let nextCall = 1;

/** A valid OPTIONS as text; `via` replaces the sent-by part of the top Via. */
function options(opts: { transport?: 'UDP' | 'TCP'; via?: string; callId?: string; extra?: string[] } = {}): string {
  const callId = opts.callId ?? `call-${nextCall++}`;
  const lines = [
    `OPTIONS sip:hushpay@${HOST} SIP/2.0`,
    `Via: SIP/2.0/${opts.transport ?? 'UDP'} ${opts.via ?? 'client.invalid:5099;rport'};branch=z9hG4bK${callId}`,
    'Max-Forwards: 70',
    `To: <sip:hushpay@${HOST}>`,
    'From: <sip:tester@client.invalid>;tag=t1',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    ...(opts.extra ?? []),
    'Content-Length: 0',
  ];
  return lines.join('\r\n') + '\r\n\r\n';
}

const open: { close(): Promise<void> | void }[] = [];

async function listen(overrides: Partial<UdpTcpTransportOptions> = {}): Promise<{ transport: UdpTcpTransport; uas: TinyUas; port: number }> {
  const uas = new TinyUas();
  const transport = await UdpTcpTransport.listen({ host: HOST, port: 0, listener: uas, ...overrides });
  uas.transport = transport;
  open.push(transport);
  return { transport, uas, port: (transport.local.udp ?? transport.local.tcp)!.port };
}

class UdpPeer {
  readonly socket = dgram.createSocket('udp4');
  readonly received: SipMessage[] = [];
  port = 0;

  static async open(): Promise<UdpPeer> {
    const peer = new UdpPeer();
    open.push(peer);
    peer.socket.on('message', (bytes) => peer.received.push(parseSipMessage(bytes, 'udp')));
    await new Promise<void>((resolve) => peer.socket.bind(0, HOST, resolve));
    peer.port = peer.socket.address().port;
    return peer;
  }

  send(bytes: string | Uint8Array, port: number): void {
    this.socket.send(typeof bytes === 'string' ? enc.encode(bytes) : bytes, port, HOST);
  }

  async next(): Promise<SipMessage> {
    const count = this.received.length;
    await until(() => this.received.length > count, 'a UDP reply');
    return this.received[count]!;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

class TcpPeer {
  readonly framer = new SipStreamFramer();
  readonly received: SipMessage[] = [];
  readonly raw: FramerOutput[] = [];
  rawBytes = '';
  ended = false;
  closed = false;
  readonly socket: net.Socket;

  constructor(port: number) {
    this.socket = net.connect({ host: HOST, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => {
      this.rawBytes += chunk.toString('latin1');
      for (const out of this.framer.push(chunk)) {
        this.raw.push(out);
        if (out.kind === 'message') this.received.push(parseSipMessage(out.bytes, 'tcp'));
      }
    });
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<TcpPeer> {
    const peer = new TcpPeer(port);
    open.push(peer);
    await new Promise((resolve) => peer.socket.once('connect', resolve));
    return peer;
  }

  write(bytes: string | Uint8Array): Promise<void> {
    return new Promise((resolve) => this.socket.write(typeof bytes === 'string' ? enc.encode(bytes) : bytes, () => resolve()));
  }

  async next(): Promise<SipMessage> {
    const count = this.received.length;
    await until(() => this.received.length > count, 'a TCP reply');
    return this.received[count]!;
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

beforeEach(() => {
  baseline = socketHandles();
});

afterEach(async () => {
  const closing = open.splice(0).reverse();
  for (const o of closing) await o.close();
  // Clients may see their server's close a turn later; give them a few turns, then require none.
  await until(() => JSON.stringify(socketHandles()) === JSON.stringify(baseline), 'sockets to close', 1_000).catch(() => undefined);
  expect(socketHandles()).toEqual(baseline);
});

// ---------------------------------------------------------------------------------------------
// pure pieces
// ---------------------------------------------------------------------------------------------

describe('SipStreamFramer (RFC 3261 §18.3)', () => {
  const invite = enc.encode(SIP_SEEDS['invite']!);
  const bye = enc.encode(SIP_SEEDS['bye']!);
  const messages = (outs: FramerOutput[]): string[] => outs.flatMap((o) => (o.kind === 'message' ? [dec.decode(o.bytes)] : []));

  it('cuts a message delivered one byte at a time', () => {
    const framer = new SipStreamFramer();
    const outs: FramerOutput[] = [];
    for (const byte of invite) outs.push(...framer.push(new Uint8Array([byte])));
    expect(messages(outs)).toEqual([SIP_SEEDS['invite']]);
    expect(framer.buffered).toBe(0);
  });

  it('cuts several messages delivered in one chunk, bodies by Content-Length', () => {
    const framer = new SipStreamFramer();
    const chunk = new Uint8Array([...invite, ...bye, ...invite]);
    expect(messages(framer.push(chunk))).toEqual([SIP_SEEDS['invite'], SIP_SEEDS['bye'], SIP_SEEDS['invite']]);
  });

  it('keeps a body that itself holds a blank line whole', () => {
    const body = 'a\r\n\r\nb';
    const text = `${SIP_SEEDS['bye']!.replace('Content-Length: 0', `Content-Length: ${body.length}`)}${body}`;
    expect(messages(new SipStreamFramer().push(enc.encode(text + text)))).toEqual([text, text]);
  });

  it.each([
    ['a CRLFCRLF ping', ['\r\n\r\n'], 1],
    ['a ping split in two', ['\r\n', '\r\n'], 1],
    ['two pings', ['\r\n\r\n\r\n\r\n'], 2],
    ['a lone CRLF (RFC 5626 pong, no answer)', ['\r\n'], 0],
    ['bare LFs', ['\n\n\n\n'], 0],
  ])('answers %s with %d pong(s) (RFC 5626 §3.5.1) and delivers nothing', (_name, chunks, pings) => {
    const framer = new SipStreamFramer();
    const outs = chunks.flatMap((c) => framer.push(enc.encode(c)));
    expect(outs.filter((o) => o.kind === 'ping')).toHaveLength(pings);
    expect(messages(outs)).toEqual([]);
  });

  it('skips keep-alives between messages', () => {
    const framer = new SipStreamFramer();
    const outs = framer.push(enc.encode(`\r\n\r\n${SIP_SEEDS['bye']}\r\n\r\n${SIP_SEEDS['bye']}`));
    expect(outs.map((o) => o.kind)).toEqual(['ping', 'message', 'ping', 'message']);
  });

  it.each([
    ['no Content-Length', SIP_SEEDS['bye']!.replace('Content-Length: 0\r\n', ''), 'no Content-Length on a stream transport'],
    ['a non-numeric Content-Length', SIP_SEEDS['bye']!.replace('Content-Length: 0', 'Content-Length: zero'), 'Content-Length is not a number'],
    ['a negative Content-Length', SIP_SEEDS['bye']!.replace('Content-Length: 0', 'Content-Length: -1'), 'Content-Length is not a number'],
    ['two different Content-Lengths', SIP_SEEDS['bye']!.replace('Content-Length: 0', 'Content-Length: 0\r\nl: 10'), 'contradictory Content-Length headers'],
    ['a frame over the maximum', SIP_SEEDS['bye']!.replace('Content-Length: 0', 'Content-Length: 5000'), 'message too large'],
    ['a header section over the maximum', `INVITE sip:a@b SIP/2.0\r\nSubject: ${'x'.repeat(5000)}`, 'header section too large'],
  ])('reports %s once, then takes nothing more', (_name, text, reason) => {
    const framer = new SipStreamFramer(4096);
    const outs = framer.push(enc.encode(text));
    expect(outs).toHaveLength(1);
    expect(outs[0]).toMatchObject({ kind: 'error', reason });
    expect(framer.failed).toBe(true);
    expect(framer.push(invite)).toEqual([]);
  });
});

describe('stampReceived (RFC 3261 §18.2.1, RFC 3581 §4)', () => {
  const request = (via: string): SipRequest => parseSipMessage(enc.encode(options({ via })), 'udp') as SipRequest;
  const from: SipAddress = { transport: 'udp', host: '192.0.2.7', port: 40123 };
  const topVia = (m: SipRequest) => parseVia(m.headers.getAll('Via')[0]!);

  it('adds received when sent-by is a domain name', () => {
    expect([...topVia(stampReceived(request('pc33.atlanta.example.com'), from)).params]).toContainEqual(['received', '192.0.2.7']);
  });

  it('adds received when sent-by is another address', () => {
    expect(topVia(stampReceived(request('192.0.2.99:5060'), from)).params.get('received')).toBe('192.0.2.7');
  });

  it('leaves a Via whose sent-by is the source address alone', () => {
    const m = request('192.0.2.7:5060');
    expect(stampReceived(m, from)).toBe(m);
  });

  it('fills an empty rport with the source port, and adds received even when the address matches', () => {
    const stamped = topVia(stampReceived(request('192.0.2.7:5060;rport'), from));
    expect(stamped.params.get('rport')).toBe('40123');
    expect(stamped.params.get('received')).toBe('192.0.2.7');
  });

  it('changes only the top Via, even when several share its line', () => {
    const m = parseSipMessage(enc.encode(options({ via: 'a.example.com;rport;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;rport' })), 'udp') as SipRequest;
    const vias = stampReceived(m, from).headers.getAll('Via').map(parseVia);
    expect(vias[0]!.params.get('rport')).toBe('40123');
    expect(vias[1]!.params.get('rport')).toBe('');
    expect(vias[1]!.params.has('received')).toBe(false);
  });
});

describe('salvageBadRequest', () => {
  it('answers a request whose body length is wrong with a 400 carrying its Via, From, To (tagged), Call-ID and CSeq', () => {
    const bytes = enc.encode(SIP_SEEDS['invite']!.replace(/Content-Length: \d+/, 'Content-Length: 99999'));
    const reply = salvageBadRequest(bytes, { transport: 'udp', host: '192.0.2.10', port: 5060 })!;
    expect(reply).toMatchObject({ kind: 'response', status: 400, reason: 'Bad Request' });
    // the Via is stamped as for a request that parsed (sent-by pc33… is a name, not the source)
    expect(parseVia(reply.headers.get('Via')!).params.get('received')).toBe('192.0.2.10');
    expect(parseVia(salvageBadRequest(bytes)!.headers.get('Via')!).params.has('received')).toBe(false);
    expect(reply.headers.get('Call-ID')).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(reply.headers.get('CSeq')).toBe('314159 INVITE');
    expect(tagOf(reply.headers.get('To'))).toMatch(/^[0-9a-f]{10}$/);
    // and it is itself a well-formed message
    expect(parseSipMessage(serializeSipMessage(reply), 'tcp')).toMatchObject({ kind: 'response', status: 400 });
  });

  it('keeps the To tag a request already had', () => {
    const bytes = enc.encode(SIP_SEEDS['bye']!.replace('Content-Length: 0', 'Content-Length: x'));
    expect(tagOf(salvageBadRequest(bytes)!.headers.get('To'))).toBe('1928301774');
  });

  it.each([
    ['a response', SIP_SEEDS['ok']!.replace(/Content-Length: \d+/, 'Content-Length: x')],
    ['an ACK', SIP_SEEDS['ack']!.replace('Content-Length: 0', 'Content-Length: x')],
    ['a request without Call-ID', SIP_SEEDS['bye']!.replace(/Call-ID: .*\r\n/, '')],
    ['a request with an unreadable Via', SIP_SEEDS['bye']!.replace(/Via: .*\r\n/, 'Via: SIP/2.0/UDP\r\n')],
    ['a request with a control character in From', SIP_SEEDS['bye']!.replace('From: Bob', 'From: B\u0000ob')],
    ['a request whose From is broken (the 400 would not parse)', SIP_SEEDS['bye']!.replace('biloxi.example.com>;tag', 'biloxi.example.com;tag')],
    ['an HTTP request', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['binary noise', '\u0000\u00ff\u0013\u0037'],
  ])('offers no reply to %s', (_name, text) => {
    expect(salvageBadRequest(Buffer.from(text, 'latin1'))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// UdpTcpTransport over loopback
// ---------------------------------------------------------------------------------------------

describe('UdpTcpTransport over UDP', () => {
  it('delivers an OPTIONS with its top Via stamped, and the 200 goes back to the source', async () => {
    const { transport, uas, port } = await listen();
    expect(transport.local.udp?.port).toBe(transport.local.tcp?.port);
    const client = await UdpPeer.open();
    client.send(options({ callId: 'u1' }), port);
    const reply = await client.next();
    expect(reply).toMatchObject({ kind: 'response', status: 200 });
    const { message, from } = await uas.next();
    expect(from).toEqual({ transport: 'udp', host: HOST, port: client.port });
    const via = parseVia(message.headers.getAll('Via')[0]!);
    expect(via.params.get('received')).toBe(HOST);
    expect(via.params.get('rport')).toBe(String(client.port));
    expect(transport.stats()).toMatchObject({ received: { udp: 1 }, delivered: 1, sent: { udp: 1 } });
  });

  it('offers a 400 for a malformed request and sends it back', async () => {
    const { transport, uas, port } = await listen();
    const client = await UdpPeer.open();
    client.send(options({ callId: 'bad-1' }).replace('CSeq: 1 OPTIONS', 'CSeq: 1 BYE'), port);
    const reply = await client.next();
    expect(reply).toMatchObject({ kind: 'response', status: 400 });
    expect(reply.headers.get('Call-ID')).toBe('bad-1');
    expect(uas.malformedSeen).toMatchObject([{ reason: 'CSeq method differs from the request method' }]);
    expect(transport.stats().dropped.malformed).toBe(1);
    expect(transport.stats().malformedReasons).toEqual({ 'CSeq method differs from the request method': 1 });
  });

  it('offers nothing for a malformed response: the next thing the client hears is the answer to its next OPTIONS', async () => {
    const { uas, port } = await listen();
    const client = await UdpPeer.open();
    client.send(SIP_SEEDS['ok']!.replace(/Content-Length: \d+/, 'Content-Length: 99999'), port);
    client.send(options({ callId: 'after' }), port);
    const reply = await client.next();
    expect(reply.headers.get('Call-ID')).toBe('after');
    expect(uas.malformedSeen).toMatchObject([{ reason: 'Content-Length larger than the body', reply: undefined }]);
  });

  it('drops a datagram over maxMessageBytes and counts it', async () => {
    const { transport, uas, port } = await listen({ maxMessageBytes: 2048 });
    const client = await UdpPeer.open();
    client.send(options({ extra: [`Subject: ${'x'.repeat(4000)}`] }), port);
    client.send(options({ callId: 'small' }), port);
    expect((await client.next()).headers.get('Call-ID')).toBe('small');
    expect(transport.stats().dropped.oversized).toBe(1);
    expect(uas.malformedSeen).toMatchObject([{ reason: 'message too large', reply: undefined }]);
  });

  it('survives a listener that throws, and counts it', async () => {
    const transport = await UdpTcpTransport.listen({
      host: HOST,
      port: 0,
      listener: {
        message: () => {
          throw new Error('listener bug');
        },
        malformed: () => {
          throw new Error('listener bug');
        },
      },
    });
    open.push(transport);
    const client = await UdpPeer.open();
    client.send(options(), transport.local.udp!.port);
    client.send('garbage\r\n\r\n', transport.local.udp!.port);
    await until(() => transport.stats().dropped.listenerThrew === 2, 'both throws');
    expect(transport.stats().dropped.internal).toBe(0);
  });

  it('sends to a host and port, and counts a send it cannot make instead of throwing', async () => {
    const { transport } = await listen();
    const client = await UdpPeer.open();
    const request = parseSipMessage(enc.encode(options({ callId: 'out' })), 'udp');
    transport.send(request, { transport: 'udp', host: HOST, port: client.port });
    await until(() => client.received.length === 1, 'the datagram');
    expect(client.received[0]!.headers.get('Call-ID')).toBe('out');
    expect(() => transport.send(request, { transport: 'udp', host: HOST, port: 70_000 })).not.toThrow();
    expect(() => transport.send(request, { transport: 'udp', host: 'no such host', port: 5060 })).not.toThrow();
    await until(() => transport.stats().dropped.sendSocket === 2, 'both failures counted');
  });
});

describe('UdpTcpTransport over TCP', () => {
  it('frames a message written in many small pieces, and answers on the same connection', async () => {
    const { transport, uas, port } = await listen();
    const client = await TcpPeer.open(port);
    const bytes = enc.encode(options({ transport: 'TCP', callId: 't1' }));
    for (let at = 0; at < bytes.length; at += 7) {
      await client.write(bytes.subarray(at, at + 7));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const reply = await client.next();
    expect(reply).toMatchObject({ kind: 'response', status: 200 });
    const { from } = await uas.next();
    expect(from.transport).toBe('tcp');
    expect(from.connection).toBeDefined();
    expect(transport.connectionIds()).toEqual([from.connection]);
    expect(from.port).toBe(client.socket.localPort);
  });

  it('delivers several messages written at once, skips keep-alives and answers a ping with a pong', async () => {
    const { transport, uas, port } = await listen();
    const client = await TcpPeer.open(port);
    await client.write('\r\n\r\n' + options({ transport: 'TCP', callId: 'a' }) + '\r\n' + options({ transport: 'TCP', callId: 'b' }) + options({ transport: 'TCP', callId: 'c' }));
    await until(() => client.received.length === 3, 'three answers');
    expect(client.received.map((m) => m.headers.get('Call-ID'))).toEqual(['a', 'b', 'c']);
    expect(uas.messages).toHaveLength(3);
    expect(client.rawBytes.startsWith('\r\nSIP/2.0 200 OK')).toBe(true); // the pong, then the answers
    expect(transport.stats().pings).toBe(1);
  });

  it('offers a 400 for a well-framed malformed request and keeps the connection', async () => {
    const { port } = await listen();
    const client = await TcpPeer.open(port);
    await client.write(options({ transport: 'TCP', callId: 'x' }).replace('CSeq: 1 OPTIONS', 'CSeq: 1 BYE'));
    expect(await client.next()).toMatchObject({ status: 400 });
    await client.write(options({ transport: 'TCP', callId: 'y' }));
    expect(await client.next()).toMatchObject({ status: 200 });
    expect(client.ended).toBe(false);
  });

  it.each([
    ['no Content-Length', options({ transport: 'TCP' }).replace('Content-Length: 0\r\n', ''), 400, 'no Content-Length on a stream transport'],
    ['a frame over the maximum', options({ transport: 'TCP' }).replace('Content-Length: 0', 'Content-Length: 100000'), 400, 'message too large'],
    ['a header section over the maximum without a blank line', `OPTIONS sip:x@y SIP/2.0\r\n${'X-Pad: y\r\n'.repeat(1000)}`, undefined, 'header section too large'],
    ['a malformed response without Content-Length', SIP_SEEDS['ok']!.replace(/Content-Length: \d+\r\n/, ''), undefined, 'no Content-Length on a stream transport'],
  ])('closes the connection on %s (a stream cannot resync), after sending any 400', async (_name, text, status, reason) => {
    const { transport, uas, port } = await listen({ maxMessageBytes: 4096 });
    const client = await TcpPeer.open(port);
    await client.write(text);
    await until(() => client.closed, 'the server to close the connection');
    expect(client.received.map((m) => (m.kind === 'response' ? m.status : 0))).toEqual(status ? [status] : []);
    expect(uas.malformedSeen.map((m) => m.reason)).toEqual([reason]);
    expect(transport.stats().dropped.tcpFraming).toBe(1);
    await until(() => transport.connectionIds().length === 0, 'the connection to be forgotten');
  });

  it('opens a connection to an address with none, queues until connected, and reuses it', async () => {
    const { transport, uas } = await listen();
    const accepted: net.Socket[] = [];
    let data = '';
    const server = net.createServer((socket) => {
      accepted.push(socket);
      socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    });
    open.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const serverPort = (server.address() as net.AddressInfo).port;
    const to: SipAddress = { transport: 'tcp', host: HOST, port: serverPort };
    const first = parseSipMessage(enc.encode(options({ transport: 'TCP', callId: 'o1' })), 'tcp');
    const second = parseSipMessage(enc.encode(options({ transport: 'TCP', callId: 'o2' })), 'tcp');
    transport.send(first, to);
    transport.send(second, to);
    await until(() => data.includes('Call-ID: o2'), 'both requests');
    expect(data.indexOf('Call-ID: o1')).toBeLessThan(data.indexOf('Call-ID: o2'));
    // the peer answers on the same connection: delivered with its connection id, and reused
    accepted[0]!.write(serializeSipMessage(respond(first as SipRequest, 200, 'OK')));
    const { from } = await uas.next((m) => m.kind === 'response');
    expect(from.connection).toBe(transport.connectionIds()[0]);
    transport.send(parseSipMessage(enc.encode(options({ transport: 'TCP', callId: 'o3' })), 'tcp'), from);
    await until(() => data.includes('Call-ID: o3'), 'the third request');
    expect(accepted).toHaveLength(1);
    for (const s of accepted) s.destroy();
  });

  it('two transports talk: a request over a new connection, the answer back on it', async () => {
    const a = await listen({ udp: false });
    const b = await listen({ udp: false });
    expect(a.transport.local.udp).toBeUndefined();
    const request = parseSipMessage(enc.encode(options({ transport: 'TCP', callId: 'ab' })), 'tcp');
    a.transport.send(request, { transport: 'tcp', host: HOST, port: b.port });
    const { message } = await a.uas.next((m) => m.kind === 'response');
    expect(message).toMatchObject({ kind: 'response', status: 200 });
    expect(b.transport.stats().connections).toMatchObject({ open: 1, opened: 1 });
    expect(a.transport.stats().connections).toMatchObject({ open: 1, opened: 1 });
  });

  it('counts a refused connection and what was queued on it, without throwing', async () => {
    const { transport } = await listen({ connectTimeoutMs: 500 });
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, HOST, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const request = parseSipMessage(enc.encode(options({ transport: 'TCP' })), 'tcp');
    transport.send(request, { transport: 'tcp', host: HOST, port: closedPort });
    transport.send(request, { transport: 'tcp', host: HOST, port: closedPort });
    await until(() => transport.stats().dropped.sendSocket === 2, 'the refused connection');
    await until(() => transport.connectionIds().length === 0, 'the connection to be forgotten');
  });

  it('closes a connection idle for idleTcpTimeoutMs (fake clock), and clears its timer on close', async () => {
    const clock = new FakeClock();
    const { transport, port } = await listen({ clock, idleTcpTimeoutMs: 1_000 });
    const client = await TcpPeer.open(port);
    await client.write(options({ transport: 'TCP' }));
    await client.next();
    clock.advance(600);
    await client.write(options({ transport: 'TCP' })); // activity at 600 ms
    await client.next();
    clock.advance(600); // 1,200 ms: 600 ms idle
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.closed).toBe(false);
    clock.advance(500); // 1,700 ms: 1,100 ms idle
    await until(() => client.closed, 'the idle close');
    expect(transport.stats().connections).toMatchObject({ open: 0, idleClosed: 1 });
    expect(clock.pending).toBe(0);
  });
});

describe('UdpTcpTransport lifecycle', () => {
  it('binds UDP and TCP on a given port, and a second listen on it fails with EADDRINUSE', async () => {
    const { port } = await listen();
    await open.pop()!.close();
    const again = await listen({ port });
    expect(again.transport.local).toEqual({ udp: { host: HOST, port }, tcp: { host: HOST, port } });
    await expect(UdpTcpTransport.listen({ host: HOST, port, listener: again.uas })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('says TCP is reliable and UDP is not', async () => {
    const { transport } = await listen();
    expect(transport.reliable('tcp')).toBe(true);
    expect(transport.reliable('udp')).toBe(false);
  });

  it('close() closes every socket and connection once, clears every timer, leaves no handle behind', async () => {
    const before = socketHandles();
    const clock = new FakeClock();
    const { transport, port } = await listen({ clock });
    const clients = await Promise.all([TcpPeer.open(port), TcpPeer.open(port), TcpPeer.open(port)]);
    await Promise.all(clients.map((c) => c.write(options({ transport: 'TCP' }))));
    await Promise.all(clients.map((c) => (c.received.length ? Promise.resolve(c.received[0]!) : c.next())));
    // an outbound connection still connecting (to a port that never answers in time)
    transport.send(parseSipMessage(enc.encode(options({ transport: 'TCP' })), 'tcp'), { transport: 'tcp', host: '192.0.2.1', port: 5060 });
    expect(transport.stats().connections.open).toBe(4);
    expect(clock.pending).toBeGreaterThanOrEqual(4);
    const first = transport.close();
    const second = transport.close();
    expect(second).toBe(first);
    await first;
    expect(clock.pending).toBe(0);
    expect(transport.stats().connections.open).toBe(0);
    await until(() => clients.every((c) => c.closed), 'the clients to see the close');
    open.splice(0);
    expect(socketHandles()).toEqual(before);
    // and after close, sends are counted, not thrown
    expect(() => transport.send(parseSipMessage(enc.encode(options()), 'udp'), { transport: 'udp', host: HOST, port })).not.toThrow();
    expect(transport.stats().dropped.sendUnavailable).toBe(1);
  });
});

describe('UdpTcpTransport under the fuzz corpus', () => {
  const corpus = fuzzMessages(10_000, 2024);

  it('takes 10,000 mutated messages on UDP without crashing, answers only requests, and still answers OPTIONS', async () => {
    const { transport, port } = await listen();
    const report = await assertSurvivesFuzz({ transport: 'udp', host: HOST, port }, { messages: corpus });
    const stats = transport.stats();
    expect(report.sent + report.skipped).toBe(corpus.length);
    expect(stats.received.udp).toBeGreaterThan(report.sent * 0.9); // loopback may drop a few under load
    expect(report.badRequests).toBeGreaterThan(100);
    expect(stats.dropped.internal).toBe(0);
    expect(stats.dropped.listenerThrew).toBe(0);
  });

  it('takes 10,000 mutated messages on TCP (a connection each) without crashing, answers only requests, and still answers OPTIONS', async () => {
    const { transport, port } = await listen();
    const report = await assertSurvivesFuzz({ transport: 'tcp', host: HOST, port }, { messages: corpus, tcpConcurrency: 32 });
    const stats = transport.stats();
    expect(report.sent).toBe(corpus.length);
    expect(report.badRequests).toBeGreaterThan(100);
    expect(stats.dropped.tcpFraming).toBeGreaterThan(100); // each closed its connection
    expect(stats.dropped.internal).toBe(0);
    expect(stats.dropped.listenerThrew).toBe(0);
    await until(() => transport.connectionIds().length === 0, 'every fuzz connection to be forgotten');
  });

  it('takes the corpus as one TCP stream per 500 messages, reconnecting when the stream is closed', async () => {
    const { transport, port } = await listen();
    let index = 0;
    let connections = 0;
    while (index < 2_000) {
      connections++;
      const client = await TcpPeer.open(port);
      const batch = corpus.slice(index, index + 500);
      for (const m of batch) {
        if (client.closed || client.ended) break;
        await client.write(m);
        await new Promise((resolve) => setImmediate(resolve)); // let the server read
        index++;
      }
      await client.close();
      open.splice(open.indexOf(client), 1);
    }
    const probe = await TcpPeer.open(port);
    await probe.write(options({ transport: 'TCP', callId: 'alive' }));
    expect((await probe.next()).headers.get('Call-ID')).toBe('alive');
    expect(connections).toBeGreaterThan(4);
    expect(transport.stats().dropped.internal).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// MemoryTransport
// ---------------------------------------------------------------------------------------------

describe('MemoryTransport', () => {
  const request = (callId: string): SipMessage => parseSipMessage(enc.encode(options({ callId })), 'udp');

  it('delivers to the peer on the next microtask, in order, through the real parser', async () => {
    const [a, b] = MemoryTransport.pair();
    const uas = new TinyUas();
    uas.transport = b;
    b.attach(uas);
    const client = new TinyUas();
    a.attach(client);
    a.send(request('m1'), b.address);
    a.send(request('m2'), b.address);
    expect(uas.messages).toHaveLength(0);
    await a.settled();
    expect(uas.messages.map((m) => m.message.headers.get('Call-ID'))).toEqual(['m1', 'm2']);
    expect(uas.messages[0]!.from).toEqual({ transport: 'udp', host: '192.0.2.1', port: 5060 });
    // the Via was stamped as a socket would (client.invalid is not 192.0.2.1)
    expect(parseVia(uas.messages[0]!.message.headers.getAll('Via')[0]!).params.get('received')).toBe('192.0.2.1');
    // the answers came back too, within the same settle
    expect(client.messages.map((m) => (m.message.kind === 'response' ? m.message.status : 0))).toEqual([200, 200]);
    expect(b.sent.map((r) => r.to)).toEqual([a.address, a.address]);
  });

  it('drops the next N sends or receives (recorded, not delivered)', async () => {
    const [a, b] = MemoryTransport.pair({ transport: 'tcp' });
    const uas = new TinyUas();
    b.attach(uas);
    a.dropNext(2);
    a.send(request('lost-1'), b.address);
    a.send(request('lost-2'), b.address);
    a.send(request('kept'), b.address);
    await a.settled();
    b.dropNextReceived(); // counts arrivals, which happen on the microtask after the send
    a.send(request('lost-3'), b.address);
    a.send(request('kept-2'), b.address);
    await a.settled();
    expect(a.sent.map((r) => r.dropped)).toEqual([true, true, false, false, false]);
    expect(uas.messages.map((m) => m.message.headers.get('Call-ID'))).toEqual(['kept', 'kept-2']);
    expect(b.undelivered).toBe(1);
    expect(uas.messages[0]!.from.connection).toMatch(/^mem-/);
    expect(a.reliable('tcp')).toBe(true);
  });

  it('waitSent finds a message already sent or waits for it; close rejects the waiters', async () => {
    const [a, b] = MemoryTransport.pair();
    a.send(request('w1'), b.address);
    await expect(a.waitSent((r) => r.message.headers.get('Call-ID') === 'w1')).resolves.toMatchObject({ index: 0 });
    const later = a.waitSent((r) => r.message.headers.get('Call-ID') === 'w2');
    a.send(request('w2'), b.address);
    await expect(later).resolves.toMatchObject({ index: 1 });
    const never = a.waitSent(() => false);
    await a.close();
    await expect(never).rejects.toBeInstanceOf(InvalidStateError);
    a.send(request('after-close'), b.address);
    expect(a.sent.at(-1)).toMatchObject({ dropped: true });
  });

  it('waitSent times out on the injected clock', async () => {
    const clock = new FakeClock();
    const [a] = MemoryTransport.pair({ clock });
    const waiting = a.waitSent(() => false, { timeoutMs: 32_000 });
    clock.advance(32_000);
    await expect(waiting).rejects.toBeInstanceOf(InvalidStateError);
    expect(clock.pending).toBe(0);
  });

  it('receive() injects bytes; malformed ones reach malformed() with a 400 to send', async () => {
    const [a, b] = MemoryTransport.pair();
    const uas = new TinyUas();
    uas.transport = b;
    b.attach(uas);
    b.receive(enc.encode(options({ callId: 'bad' }).replace('CSeq: 1 OPTIONS', 'CSeq: 1 BYE')));
    await b.settled();
    expect(uas.malformedSeen).toMatchObject([{ reason: 'CSeq method differs from the request method', reply: { status: 400 } }]);
    expect(b.sent).toMatchObject([{ message: { status: 400 }, to: a.address }]);
  });
});
