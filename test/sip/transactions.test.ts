import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { type SipMessage, type SipRequest, type SipResponse, SipHeaders, parseSipMessage, serializeSipMessage } from '../../src/sip/message.ts';
import { DEFAULT_TIMERS, type ServerTransaction, TransactionLayer, makeResponse, newBranch } from '../../src/sip/transactions.ts';
import type { SipAddress } from '../../src/sip/transport.ts';

const T1 = DEFAULT_TIMERS.T1;

const T4 = DEFAULT_TIMERS.T4;
const PEER: SipAddress = { transport: 'udp', host: '127.0.0.1', port: 5080 };
const TCP_PEER: SipAddress = { transport: 'tcp', host: '127.0.0.1', port: 5080, connection: 'c1' };

/** A transport that records what is sent, at what time (a round trip through the real parser). */
function fakeTransport(clock: FakeClock) {
  const sent: { at: number; message: SipMessage; to: SipAddress }[] = [];
  return {
    sent,
    send(message: SipMessage, to: SipAddress) {
      sent.push({ at: clock.now(), message: parseSipMessage(serializeSipMessage(message)), to });
    },
    reliable: (t: 'udp' | 'tcp') => t === 'tcp',
    times: (pred: (m: SipMessage) => boolean) => sent.filter((s) => pred(s.message)).map((s) => s.at),
  };
}

function request(method: string, branch = newBranch(), cseq = 1): SipRequest {
  const headers = new SipHeaders([
    ['Via', `SIP/2.0/UDP 127.0.0.1:5070;branch=${branch}`],
    ['Max-Forwards', '70'],
    ['From', '<sip:caller@example.com>;tag=a1'],
    ['To', '<sip:agent@example.com>'],
    ['Call-ID', 'call-1@example.com'],
    ['CSeq', `${cseq} ${method}`],
  ]);
  return { kind: 'request', method, uri: 'sip:agent@example.com', headers, body: new Uint8Array(0) };
}

function setup() {
  const clock = new FakeClock();
  const transport = fakeTransport(clock);
  const requests: { request: SipRequest; tx: ServerTransaction | undefined }[] = [];
  const stray: SipResponse[] = [];
  const layer = new TransactionLayer(transport, clock, {
    request: (r, tx) => requests.push({ request: r, tx }),
    strayResponse: (r) => stray.push(r),
  });
  return { clock, transport, layer, requests, stray };
}

const isMethod = (method: string) => (m: SipMessage) => m.kind === 'request' && m.method === method;
const isStatus = (status: number) => (m: SipMessage) => m.kind === 'response' && m.status === status;

describe('client INVITE transaction (RFC 3261 §17.1.1)', () => {
  it('retransmits on Timer A at T1, 2T1, 4T1… and gives up on Timer B at 64·T1, once', () => {
    const { clock, transport, layer } = setup();
    let timeouts = 0;
    layer.sendRequest(request('INVITE'), PEER, { response: () => {}, timeout: () => timeouts++ });
    clock.advance(64 * T1 + 1);
    expect(transport.times(isMethod('INVITE'))).toEqual([0, 500, 1500, 3500, 7500, 15500, 31500]);
    expect(timeouts).toBe(1);
    expect(layer.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('ACKs a 486 with its own branch, again for each retransmission, tells the TU once, then ends on Timer D', () => {
    const { clock, transport, layer } = setup();
    const seen: number[] = [];
    const invite = request('INVITE');
    layer.sendRequest(invite, PEER, { response: (r) => seen.push(r.status), timeout: () => {} });
    const busy = makeResponse(invite, 486, { toTag: 'b1' });
    layer.receive(parseSipMessage(serializeSipMessage(makeResponse(invite, 180, { toTag: 'b1' }))), PEER);
    layer.receive(busy, PEER);
    layer.receive(busy, PEER);
    expect(seen).toEqual([180, 486]);
    const acks = transport.sent.filter((s) => isMethod('ACK')(s.message));
    expect(acks).toHaveLength(2);
    const ack = acks[0]!.message as SipRequest;
    expect(ack.headers.getAll('Via')[0]).toBe(invite.headers.getAll('Via')[0]);
    expect(ack.headers.get('To')).toContain('tag=b1');
    expect(ack.headers.get('CSeq')).toBe('1 ACK');
    clock.advance(32_000 - 1);
    expect(layer.size).toBe(1);
    clock.advance(1);
    expect(layer.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('passes every 2xx up while Accepted (RFC 6026) and ends on Timer M', () => {
    const { clock, layer } = setup();
    const seen: number[] = [];
    const invite = request('INVITE');
    layer.sendRequest(invite, PEER, { response: (r) => seen.push(r.status), timeout: () => {} });
    const ok = makeResponse(invite, 200, { toTag: 'b1' });
    layer.receive(ok, PEER);
    clock.advance(T1);
    layer.receive(ok, PEER);
    expect(seen).toEqual([200, 200]);
    clock.advance(64 * T1);
    expect(layer.size).toBe(0);
  });

  it('does not retransmit over TCP, and Timer D is zero there', () => {
    const { clock, transport, layer } = setup();
    const invite = request('INVITE');
    layer.sendRequest(invite, TCP_PEER, { response: () => {}, timeout: () => {} });
    clock.advance(10 * T1);
    expect(transport.times(isMethod('INVITE'))).toEqual([0]);
    layer.receive(makeResponse(invite, 603, { toTag: 'x' }), TCP_PEER);
    clock.advance(0);
    expect(layer.size).toBe(0);
  });
});

describe('client non-INVITE transaction (§17.1.2)', () => {
  it('retransmits on Timer E doubling up to T2, every T2 once Proceeding, and times out on Timer F', () => {
    const { clock, transport, layer } = setup();
    let timeouts = 0;
    const bye = request('BYE');
    layer.sendRequest(bye, PEER, { response: () => {}, timeout: () => timeouts++ });
    clock.advance(7500);
    expect(transport.times(isMethod('BYE'))).toEqual([0, 500, 1500, 3500, 7500]);
    layer.receive(makeResponse(bye, 100), PEER);
    clock.advance(64 * T1 - 7500);
    // after 7.5 s the interval is capped at T2 = 4 s, in Trying and in Proceeding alike
    expect(transport.times(isMethod('BYE'))).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    expect(timeouts).toBe(1);
    expect(clock.pending).toBe(0);
  });

  it('ends on Timer K (T4) after its final response, absorbing retransmissions', () => {
    const { clock, layer } = setup();
    const seen: number[] = [];
    const options = request('OPTIONS');
    layer.sendRequest(options, PEER, { response: (r) => seen.push(r.status), timeout: () => {} });
    layer.receive(makeResponse(options, 200), PEER);
    layer.receive(makeResponse(options, 200), PEER);
    expect(seen).toEqual([200]);
    clock.advance(T4 - 1);
    expect(layer.size).toBe(1);
    clock.advance(1);
    expect(layer.size).toBe(0);
  });
});

describe('server INVITE transaction (§17.2.1)', () => {
  it('sends 100 Trying at once, answers a retransmitted INVITE with the last response', () => {
    const { transport, layer, requests } = setup();
    const invite = request('INVITE');
    layer.receive(invite, PEER);
    expect(requests).toHaveLength(1);
    layer.receive(invite, PEER); // retransmission: not a new request
    expect(requests).toHaveLength(1);
    expect(transport.sent.filter((s) => isStatus(100)(s.message))).toHaveLength(2);
    requests[0]!.tx!.respond(makeResponse(invite, 180, { toTag: 't' }));
    layer.receive(invite, PEER);
    expect(transport.sent.at(-1)!.message).toMatchObject({ status: 180 });
  });

  it('resends a final non-2xx on Timer G (T1 doubling to T2) until the ACK, then ends on Timer I', () => {
    const { clock, transport, layer, requests } = setup();
    const invite = request('INVITE');
    layer.receive(invite, PEER);
    requests[0]!.tx!.respond(makeResponse(invite, 486, { toTag: 't' }));
    clock.advance(7500);
    expect(transport.times(isStatus(486))).toEqual([0, 500, 1500, 3500, 7500]);
    clock.advance(4000);
    expect(transport.times(isStatus(486)).at(-1)).toBe(11500);
    const ack = request('ACK', invite.headers.getAll('Via')[0]!.split('branch=')[1]!);
    layer.receive(ack, PEER);
    clock.advance(20_000);
    expect(transport.times(isStatus(486)).at(-1)).toBe(11500);
    expect(requests).toHaveLength(1); // the ACK was absorbed by the transaction
    expect(layer.size).toBe(0);
  });

  it('gives up on Timer H at 64·T1 when no ACK comes, and says so', () => {
    const { clock, layer, requests } = setup();
    const invite = request('INVITE');
    layer.receive(invite, PEER);
    const tx = requests[0]!.tx!;
    let timedOut = 0;
    tx.onTimeout = () => timedOut++;
    tx.respond(makeResponse(invite, 500, { toTag: 't' }));
    clock.advance(64 * T1);
    expect(timedOut).toBe(1);
    expect(layer.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('hands a 2xx ACK (its own branch) to the core, and finds the INVITE a CANCEL targets', () => {
    const { layer, requests } = setup();
    const branch = newBranch();
    const invite = request('INVITE', branch);
    layer.receive(invite, PEER);
    expect(layer.inviteFor(request('CANCEL', branch))).toBe(requests[0]!.tx);
    requests[0]!.tx!.respond(makeResponse(invite, 200, { toTag: 't' }));
    layer.receive(request('ACK'), PEER);
    expect(requests.map((r) => [r.request.method, r.tx === undefined])).toEqual([
      ['INVITE', false],
      ['ACK', true],
    ]);
  });
});

describe('server non-INVITE transaction (§17.2.2)', () => {
  it('answers retransmissions with its response and ends on Timer J (64·T1 UDP, 0 TCP)', () => {
    const { clock, transport, layer, requests } = setup();
    const bye = request('BYE');
    layer.receive(bye, PEER);
    requests[0]!.tx!.respond(makeResponse(bye, 200));
    layer.receive(bye, PEER);
    expect(transport.times(isStatus(200))).toEqual([0, 0]);
    clock.advance(64 * T1);
    expect(layer.size).toBe(0);
    layer.receive(request('BYE'), TCP_PEER);
    requests[1]!.tx!.respond(makeResponse(requests[1]!.request, 200));
    clock.advance(0);
    expect(layer.size).toBe(0);
  });

  it('close() ends every transaction and clears every timer', () => {
    const { clock, layer } = setup();
    layer.sendRequest(request('INVITE'), PEER, { response: () => {}, timeout: () => {} });
    layer.sendRequest(request('OPTIONS'), PEER, { response: () => {}, timeout: () => {} });
    layer.receive(request('INVITE'), PEER);
    expect(layer.size).toBe(3);
    layer.close();
    layer.close();
    expect(layer.size).toBe(0);
    expect(clock.pending).toBe(0);
  });
});


describe('makeResponse (§8.2.6)', () => {
  it('copies Via lines as they came, so a request with 300 Vias on one line gets a response that parses', () => {
    const invite = request('INVITE');
    const top = invite.headers.get('Via')!;
    invite.headers.set('Via', [top, ...Array.from({ length: 300 }, (_, i) => `SIP/2.0/UDP relay${i}.example.com;branch=z9hG4bK${i}`)].join(', '));
    invite.headers.append('Via', 'SIP/2.0/TCP last.example.com;branch=z9hG4bKlast');
    const parsed = parseSipMessage(serializeSipMessage(makeResponse(invite, 486, { toTag: 'b1' })));
    expect(parsed.headers.getAll('Via')).toEqual(invite.headers.getAll('Via'));
    expect(parsed.headers.entries().filter((f) => f.name === 'Via')).toHaveLength(2);
  });

  it('joins very many separate Via lines into one, in order, so the response still parses', () => {
    const invite = request('INVITE');
    for (let i = 0; i < 200; i++) invite.headers.append('Via', `SIP/2.0/UDP hop${i}.example.com;branch=z9hG4bK${i}`);
    const parsed = parseSipMessage(serializeSipMessage(makeResponse(invite, 200, { toTag: 'b1' })));
    expect(parsed.headers.getAll('Via')).toEqual(invite.headers.getAll('Via'));
    expect(parsed.headers.entries().filter((f) => f.name === 'Via')).toHaveLength(1);
  });
});
