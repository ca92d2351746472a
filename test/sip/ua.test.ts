import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { SipRequestFailedError } from '../../src/errors.ts';
import { type SipMessage, type SipRequest, SipHeaders, parseSipMessage, serializeSipMessage } from '../../src/sip/message.ts';
import { DEFAULT_TIMERS } from '../../src/sip/transactions.ts';
import type { SipAddress } from '../../src/sip/transport.ts';
import { type IncomingInvite, type InviteResponder, SipUserAgent } from '../../src/sip/ua.ts';

const T1 = DEFAULT_TIMERS.T1;

/**
 * Two user agents wired back to back through the real serializer and parser, on one fake
 * clock; `drop` discards matching messages (a lossy network), `log` records what crossed.
 */
function pair() {
  const clock = new FakeClock();
  const log: { from: 'a' | 'b'; message: SipMessage }[] = [];
  const drops: ((m: SipMessage) => boolean)[] = [];
  const addresses = { a: { transport: 'udp', host: '127.0.0.1', port: 5061 }, b: { transport: 'udp', host: '127.0.0.1', port: 5062 } } as const satisfies Record<string, SipAddress>;
  const uas: Partial<Record<'a' | 'b', SipUserAgent>> = {};
  const make = (self: 'a' | 'b', other: 'a' | 'b') =>
    new SipUserAgent({
      clock,
      transport: {
        local: { udp: { host: addresses[self].host, port: addresses[self].port }, tcp: undefined, tls: undefined },
        reliable: () => false,
        send: (message) => {
          const bytes = serializeSipMessage(message);
          const parsed = parseSipMessage(bytes);
          log.push({ from: self, message: parsed });
          const dropIndex = drops.findIndex((d) => d(parsed));
          if (dropIndex >= 0) {
            drops.splice(dropIndex, 1);
            return;
          }
          queueMicrotask(() => uas[other]!.receive(parseSipMessage(bytes), addresses[self]));
        },
      },
    });
  uas.a = make('a', 'b');
  uas.b = make('b', 'a');
  return { clock, log, drops, a: uas.a, b: uas.b, bUri: 'sip:agent@127.0.0.1:5062' };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

const methods = (log: { message: SipMessage }[]) => log.map(({ message: m }) => (m.kind === 'request' ? m.method : String(m.status)));

describe('SIP user agent', () => {
  it('sets up a call (INVITE, 100, 180, 200, ACK) and tears it down with BYE, leaving nothing open', async () => {
    const { clock, log, a, b, bUri } = pair();
    b.on('invite', (invite, res) => {
      res.send(180);
      void b.createUAS(invite, res, { localSdp: 'v=0 b' });
    });
    const ended: string[] = [];
    const dialogA = await a.createUAC(bUri, { localSdp: 'v=0 a' });
    await flush();
    expect(dialogA.remoteSdp).toBe('v=0 b');
    expect(methods(log)).toEqual(['INVITE', '100', '180', '200', 'ACK']);
    expect(b.counts.dialogs).toBe(1);
    dialogA.on('destroy', (r) => ended.push(`a:${r.by}`));
    b.on('invite', () => {});
    await dialogA.destroy();
    await flush();
    expect(methods(log).slice(-2)).toEqual(['BYE', '200']);
    expect(ended).toEqual(['a:local']);
    expect([a.counts, b.counts].map((c) => c.dialogs)).toEqual([0, 0]);
    clock.advance(64 * T1);
    expect([a.counts, b.counts].map((c) => c.transactions)).toEqual([0, 0]);
    await a.close();
    await b.close();
    expect(clock.pending).toBe(0);
  });

  it('cancels a ringing call: CANCEL gets 200, the INVITE 487, the callee hears "cancel"', async () => {
    const { log, a, b, bUri } = pair();
    const cancelled: string[] = [];
    b.on('invite', (invite, res) => {
      invite.on('cancel', () => cancelled.push(invite.callId));
      res.send(180);
    });
    const abort = new AbortController();
    const call = a.createUAC(bUri, { localSdp: 'v=0' }, { onProvisional: (r) => r.status === 180 && abort.abort(), signal: abort.signal });
    await expect(call).rejects.toMatchObject({ status: 487 });
    await flush();
    expect(cancelled).toHaveLength(1);
    expect(methods(log)).toEqual(['INVITE', '100', '180', 'CANCEL', '200', '487', 'ACK']);
  });

  it('retransmits the 2xx (T1, 2T1, …) until the ACK arrives, and the caller ACKs each copy', async () => {
    const { clock, log, drops, a, b, bUri } = pair();
    let uasDone = false;
    b.on('invite', (invite, res) => void b.createUAS(invite, res, { localSdp: 'v=0' }).then(() => (uasDone = true)));
    drops.push((m) => m.kind === 'request' && m.method === 'ACK'); // the first ACK is lost
    await a.createUAC(bUri, { localSdp: 'v=0' });
    await flush();
    expect(uasDone).toBe(false);
    clock.advance(T1);
    await flush();
    expect(uasDone).toBe(true);
    expect(methods(log)).toEqual(['INVITE', '100', '200', 'ACK', '200', 'ACK']);
  });

  it('gives up on a 2xx never ACKed after 64·T1: sends BYE and ends the dialog as timed out', async () => {
    const { clock, drops, a, b, bUri } = pair();
    const reasons: string[] = [];
    for (let i = 0; i < 20; i++) drops.push((m) => m.kind === 'request' && m.method === 'ACK');
    b.on('invite', (invite, res) => void b.createUAS(invite, res, { localSdp: 'v=0' }).catch(() => reasons.push('rejected')));
    await a.createUAC(bUri, { localSdp: 'v=0' });
    for (let t = 0; t < 66; t++) {
      clock.advance(T1);
      await flush();
    }
    expect(reasons).toEqual(['rejected']);
    expect(b.counts.dialogs).toBe(0);
  });

  it('passes a re-INVITE (hold) and an INFO to the peer dialog, and answers OPTIONS out of dialog', async () => {
    const { a, b, bUri, log } = pair();
    const infos: string[] = [];
    b.on('invite', (invite, res) =>
      void b.createUAS(invite, res, { localSdp: 'v=0 b' }).then((d) => {
        d.on('modify', (req) => req.respond(200, { sdp: req.sdp.replace('sendonly', 'recvonly') }));
        d.on('info', (req) => infos.push(`${req.contentType}|${req.body}`));
      }),
    );
    const dialog = await a.createUAC(bUri, { localSdp: 'v=0 a' });
    await flush();
    expect(await dialog.modify('v=0 a a=sendonly')).toBe('v=0 a a=recvonly');
    const info = await dialog.request('INFO', { body: 'Signal=5\r\nDuration=160\r\n', contentType: 'application/dtmf-relay' });
    expect(info.status).toBe(200);
    expect(infos).toEqual(['application/dtmf-relay|Signal=5\r\nDuration=160\r\n']);
    const options = await a.send(outOfDialog('OPTIONS'), { transport: 'udp', host: '127.0.0.1', port: 5062 });
    expect(options.status).toBe(200);
    expect(options.headers.get('Allow')).toContain('INFO');
    expect(options.headers.get('Accept')).toContain('application/sdp');
    expect(methods(log)).toContain('INFO');
  });

  it('answers 481 to a BYE for no dialog and 405 to an unknown method', async () => {
    const { a } = pair();
    const to = { transport: 'udp', host: '127.0.0.1', port: 5062 } as const;
    const bye = outOfDialog('BYE');
    bye.headers.set('To', '<sip:agent@127.0.0.1>;tag=nosuch');
    expect((await a.send(bye, to)).status).toBe(481);
    expect((await a.send(outOfDialog('MESSAGE'), to)).status).toBe(405);
  });

  it('rejects a call the callee declines with a typed error carrying the status', async () => {
    const { a, b, bUri } = pair();
    b.on('invite', (_invite: IncomingInvite, res: InviteResponder) => res.send(486));
    const error = await a.createUAC(bUri, { localSdp: 'v=0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SipRequestFailedError);
    expect(error).toMatchObject({ status: 486, code: 'HP_ERR_SIP_REQUEST_FAILED' });
  });
});

describe('SIP user agent: addresses per transport (RFC 3261 §18, §19.1.2, §26.2)', () => {
  const ua = (resolve?: (host: string) => Promise<string>): SipUserAgent =>
    new SipUserAgent({
      clock: new FakeClock(),
      transport: {
        local: { udp: { host: '192.0.2.10', port: 5060 }, tcp: { host: '192.0.2.10', port: 5060 }, tls: { host: '192.0.2.10', port: 5061 } },
        reliable: (t) => t !== 'udp',
        send: () => {},
      },
      ...(resolve ? { resolve } : {}),
    });

  it('writes SIP/2.0/TLS in Via and ;transport=tls in Contact, with the TLS port', () => {
    const u = ua();
    expect(u.via('tls')).toMatch(/^SIP\/2\.0\/TLS 192\.0\.2\.10:5061;branch=z9hG4bK\S+;rport$/);
    expect(u.contact('tls')).toBe('<sip:hushpay@192.0.2.10:5061;transport=tls>');
    expect(u.contact('tcp')).toBe('<sip:hushpay@192.0.2.10:5060;transport=tcp>');
    expect(u.contact('udp')).toBe('<sip:hushpay@192.0.2.10:5060>');
  });

  it.each([
    ['sip:pbx@10.0.0.5;transport=tls', undefined, { transport: 'tls', host: '10.0.0.5', port: 5061 }],
    ['sip:pbx@10.0.0.5:5071;transport=TLS', undefined, { transport: 'tls', host: '10.0.0.5', port: 5071 }],
    ['sips:pbx@10.0.0.5', undefined, { transport: 'tls', host: '10.0.0.5', port: 5061 }],
    ['sip:pbx@10.0.0.5;transport=tcp', undefined, { transport: 'tcp', host: '10.0.0.5', port: 5060 }],
    ['sip:pbx@10.0.0.5', undefined, { transport: 'udp', host: '10.0.0.5', port: 5060 }],
    // no transport parameter: the dialog's own transport (and its default port)
    ['sip:caller@10.0.0.6', { transport: 'tls', host: '10.0.0.9', port: 40000, connection: 'tls-1' }, { transport: 'tls', host: '10.0.0.6', port: 5061 }],
    // the same address as the dialog's connection: that connection
    ['sip:caller@10.0.0.9:40000;transport=tls', { transport: 'tls', host: '10.0.0.9', port: 40000, connection: 'tls-1' }, { transport: 'tls', host: '10.0.0.9', port: 40000, connection: 'tls-1' }],
  ] as const)('sends to %s (dialog on %j) at %j', async (uri, fallback, expected) => {
    expect(await ua().targetOf(uri, fallback)).toEqual(expected);
  });

  it('keeps the host name of a TLS URI as servername, for SNI and the certificate check (RFC 5922 §7.2)', async () => {
    const u = ua(async () => '10.0.0.7');
    expect(await u.targetOf('sip:pbx@pbx.example.com;transport=tls')).toEqual({ transport: 'tls', host: '10.0.0.7', port: 5061, servername: 'pbx.example.com' });
    expect(await u.targetOf('sip:pbx@pbx.example.com;transport=tcp')).toEqual({ transport: 'tcp', host: '10.0.0.7', port: 5060 });
  });

  it('answers an INVITE that came over TLS with a Contact on the TLS port', () => {
    const invite = outOfDialog('INVITE');
    invite.headers.set('Via', 'SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bKtls1;rport');
    expect(ua().buildResponse(invite, 200, 'x').headers.get('Contact')).toBe('<sip:hushpay@192.0.2.10:5061;transport=tls>');
    expect(ua().buildResponse(outOfDialog('INVITE'), 200, 'x').headers.get('Contact')).toBe('<sip:hushpay@192.0.2.10:5060>');
  });
});

function outOfDialog(method: string): SipRequest {
  const headers = new SipHeaders([
    ['Via', `SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`],
    ['Max-Forwards', '70'],
    ['From', '<sip:trunk@127.0.0.1>;tag=t1'],
    ['To', '<sip:hushpay@127.0.0.1>'],
    ['Call-ID', `${Math.random()}@test`],
    ['CSeq', `1 ${method}`],
  ]);
  return { kind: 'request', method, uri: 'sip:hushpay@127.0.0.1:5062', headers, body: new Uint8Array(0) };
}
