/**
 * hushpay as the B2BUA with SIP over TLS on both legs: a sip-sim caller reaches hushpay's TLS
 * port, hushpay reaches a sip-sim agent at a `;transport=tls` PBX URI, and every SIP message of
 * the call — INVITE, ACK, the caller's SIP INFO digits, BYE — crosses TLS, each side verifying
 * the other's certificate. Media stays RTP (no SRTP).
 *
 * The certificate is made at test time with `openssl` (test/sip/certs.ts) and deleted after.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { validateConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { type Hushpay, startHushpay } from '../../src/server.ts';
import { EmbeddedSipPort } from '../../src/sip/embedded.ts';
import { parseVia } from '../../src/sip/message.ts';
import { SimAgent, SimCaller } from '../../sip-sim/index.ts';
import { hasOpenssl, makeTestCerts, type TestCerts } from '../sip/certs.ts';
import { freePort, rtpRange } from '../support/hushpay.ts';

let certs: TestCerts;
const cleanup: (() => Promise<void>)[] = [];
let socketsBefore = 0;

const openSockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap' || r === 'TCPServerWrap' || r === 'TCPWrap' || r === 'TCPSocketWrap').length;

beforeAll(() => {
  if (hasOpenssl) certs = makeTestCerts();
});
afterAll(() => certs?.remove());
beforeEach(() => {
  socketsBefore = openSockets();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  // every leg, TLS connection and RTP socket closed: nothing left open
  await waitFor(() => openSockets() === socketsBefore, 1_000).catch(() => undefined);
  expect(openSockets()).toBe(socketsBefore);
});

async function waitFor(predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** hushpay on an embedded port listening for TLS (the port made here, as `startHushpay` lets a test). */
async function startTlsHushpay(pbx: string): Promise<{ hushpay: Hushpay; port: EmbeddedSipPort; tlsPort: number }> {
  const raw = {
    sip: { host: '127.0.0.1', port: await freePort(), timers: { T1: 100, T2: 800, T4: 1000 }, tls: { port: 0, certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.certFile } },
    media: { host: '127.0.0.1', ...rtpRange(), noRtpTimeoutMs: 10_000 },
    http: { host: '127.0.0.1', port: 0 },
    dataDir: mkdtempSync(join(tmpdir(), 'hushpay-tls-data-')),
  };
  cleanup.push(async () => rmSync(raw.dataDir, { recursive: true, force: true }));
  const config = validateConfig(raw, { pbx });
  const sip = config.sip;
  const port = await EmbeddedSipPort.start({ host: sip.host, port: sip.port, udp: sip.udp, tcp: sip.tcp, tls: sip.tls, advertise: sip.advertise, clock: systemClock, timers: sip.timers });
  const sink = new Writable({ write: (_chunk: Buffer, _enc, done) => done() });
  const hushpay = await startHushpay(config, { port, logger: createLogger({ level: 'warn', destination: sink }) });
  const tlsPort = Number(port.listening.find((l) => l.startsWith('tls:'))!.split(':')[2]);
  return { hushpay, port, tlsPort };
}

describe.skipIf(!hasOpenssl)('hushpay between a trunk and a PBX over SIP/TLS', () => {
  it('connects a call over TLS on both legs, hears SIP INFO digits sent over TLS, passes none to the agent, and ends both legs', async () => {
    const tls = { cert: certs.cert, key: certs.key, ca: certs.cert };
    const agent = await SimAgent.listen({ tls });
    cleanup.push(() => agent.close());
    expect(agent.uri('agents')).toMatch(/;transport=tls$/);
    const { hushpay, port, tlsPort } = await startTlsHushpay(agent.uri('agents'));
    cleanup.push(() => hushpay.close());
    const caller = await SimCaller.start({ tls });
    cleanup.push(() => caller.close());
    const digits: string[] = [];
    const ends: string[] = [];
    hushpay.b2bua.on('call', (call) => call.on('digit', (d) => digits.push(`${d.digit}:${d.source}`)));
    hushpay.b2bua.on('ended', (_call, end) => ends.push(end.reason));

    const summary = await caller.placeCall({ to: `sip:100@127.0.0.1:${tlsPort};transport=tls`, digits: '4242', dtmf: 'info', afterMs: 300, hangupAfterMs: 1500 });
    const agentCall = await agent.nextCall();
    const agentSummary = await agentCall.ended;
    await waitFor(() => ends.length === 1);

    expect(summary).toMatchObject({ status: 200, answered: true, reason: 'hangup' });
    expect(agentSummary).toMatchObject({ answered: true, reason: 'remote-hangup' });
    // the B leg's INVITE came over TLS, from hushpay's TLS port
    const via = parseVia(agentCall.inviteHeaders!.getAll('Via')[0]!);
    expect(via).toMatchObject({ transport: 'TLS', port: tlsPort });
    expect(agentCall.inviteHeaders!.get('Contact')).toMatch(new RegExp(`:${tlsPort};transport=tls>$`));
    // hushpay heard the INFO digits; the agent got none
    expect(digits).toEqual(['4:sipinfo', '2:sipinfo', '4:sipinfo', '2:sipinfo']);
    expect(agentSummary.infos).toEqual([]);
    expect(agentSummary.digitsReceived).toEqual([]);
    // and not one SIP message of the call went over UDP or TCP
    const stats = port.transportStats;
    expect(stats.received.udp + stats.received.tcp + stats.sent.udp + stats.sent.tcp).toBe(0);
    expect(stats.received.tls).toBeGreaterThan(4);
    expect(stats.dropped.tlsHandshake).toBe(0);
    expect(stats.dropped.sendSocket).toBe(0);
  });
});
