/**
 * hushpay as the B2BUA between a sip-sim caller (the trunk) and a sip-sim agent (the PBX), over
 * real loopback UDP. What the agent hears and what hushpay records is graded by multimon-ng and
 * spandsp; what crosses the wire is counted by the agent.
 */

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CallEnd } from '../../src/calls/call.ts';
import { systemClock } from '../../src/clock.ts';
import { decodeWavToInt16, readWav } from '../../src/media/wav.ts';
import type { SipMessage } from '../../src/sip/message.ts';
import { UdpTcpTransport } from '../../src/sip/transport-udp-tcp.ts';
import type { SipAddress } from '../../src/sip/transport.ts';
import { SipUserAgent } from '../../src/sip/ua.ts';
import { type DtmfMethod, SimAgent, SimCaller } from '../../sip-sim/index.ts';
import { concatPcm, naturalSpeechFiles, readPcm16Wav } from '../support/corpus.ts';
import { type TestHushpay, freePort, startTestHushpay } from '../support/hushpay.ts';
import { decodeMultimon, decodeSpandsp } from '../support/referees.ts';

const CARD = '4111111111111111';

let hushpay: TestHushpay | undefined;
let cleanup: (() => Promise<void>)[] = [];
const ends: { callId: string; end: CallEnd }[] = [];
let socketsBefore = 0;

const openSockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap' || r === 'TCPServerWrap' || r === 'TCPWrap').length;

beforeEach(() => {
  socketsBefore = openSockets();
  ends.length = 0;
});

afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
  if (hushpay) {
    await hushpay.close();
    expect(hushpay.b2bua.calls.size).toBe(0);
    expect(hushpay.port.counts.dialogs).toBe(0);
    expect(hushpay.rtpPorts.inUse).toBe(0);
    hushpay = undefined;
  }
  await new Promise((r) => setTimeout(r, 50));
  // every call closed its legs and sockets: nothing left open
  expect(openSockets()).toBe(socketsBefore);
});

async function setup(options: { agent?: Parameters<typeof SimAgent.listen>[0]; raw?: Record<string, unknown>; pbx?: string } = {}) {
  const agent = await SimAgent.listen(options.agent ?? {});
  cleanup.push(() => agent.close());
  hushpay = await startTestHushpay({ pbx: options.pbx ?? agent.uri('agents'), ...(options.raw ? { raw: options.raw } : {}) });
  hushpay.b2bua.on('ended', (call, end) => ends.push({ callId: call.id, end }));
  const caller = await SimCaller.start();
  cleanup.push(() => caller.close());
  const to = `sip:100@127.0.0.1:${hushpay.sipPort}`;
  return { agent, caller, to, hushpay };
}

const speech = (): Int16Array => concatPcm(naturalSpeechFiles()[0]!.files.slice(10, 14).map(readPcm16Wav)).subarray(0, 8000 * 6);

function wavChannels(path: string): Int16Array[] {
  return decodeWavToInt16(readWav(readFileSync(path)));
}

describe('hushpay between a trunk and a PBX', () => {
  it('connects a call, carries the caller’s X-headers and its own call id, and ends both legs on the caller’s BYE', async () => {
    const { agent, caller, to } = await setup();
    const summary = await caller.placeCall({ to, headers: [['X-Customer-Id', 'c-981']], hangupAfterMs: 600 });
    const agentCall = await agent.nextCall();
    const agentSummary = await agentCall.ended;
    expect(summary).toMatchObject({ status: 200, answered: true, reason: 'hangup' });
    expect(agentSummary).toMatchObject({ answered: true, reason: 'remote-hangup' });
    const headers = agentCall.inviteHeaders!;
    expect(headers.get('X-Customer-Id')).toBe('c-981');
    expect(headers.get('X-Hushpay-Call-Id')).toMatch(/^hp_[a-z0-9]{20}$/);
    // audio flowed both ways through hushpay
    expect(summary.received.packets).toBeGreaterThan(20);
    expect(agentSummary.received.packets).toBeGreaterThan(20);
    await waitFor(() => ends.length === 1);
    expect(ends[0]!.end.reason).toBe('caller');
    expect(ends[0]!.callId).toBe(headers.get('X-Hushpay-Call-Id'));
  });

  it('ends the caller’s leg when the agent hangs up', async () => {
    const { caller, to } = await setup({ agent: { hangupAfterMs: 500 } });
    const summary = await caller.placeCall({ to });
    expect(summary).toMatchObject({ status: 200, reason: 'remote-hangup' });
    await waitFor(() => ends.length === 1);
    expect(ends[0]!.end.reason).toBe('agent');
  });

  it.each<DtmfMethod>(['inband', 'rfc4733', 'info', 'both'])(
    'hears a card number keyed %s while the caller talks, and the agent and the recording hear none of it',
    async (dtmf) => {
      const { agent, caller, to, hushpay } = await setup({ agent: { play: speech(), record: `${mkdtempSync(join(tmpdir(), 'agent-'))}/heard.wav` } });
      const digits: string[] = [];
      hushpay.b2bua.on('call', (call) => call.on('digit', (d) => digits.push(`${d.digit}:${d.source}`)));
      const summary = await caller.placeCall({ to, play: speech(), digits: CARD, dtmf, afterMs: 600, hangupAfterMs: 5200 });
      const agentCall = await agent.nextCall();
      const agentSummary = await agentCall.ended;
      expect(summary.status).toBe(200);
      await waitFor(() => ends.length === 1);

      // hushpay heard each key once, by the channel it came on (in-band for 'both': the tone
      // and the event are one press)
      const expectedSource = dtmf === 'info' ? 'sipinfo' : dtmf === 'inband' ? 'inband' : 'rfc4733';
      expect(digits.map((d) => d.split(':')[0]).join('')).toBe(CARD);
      if (dtmf !== 'both') expect(new Set(digits.map((d) => d.split(':')[1]))).toEqual(new Set([expectedSource]));
      // nothing of the keys crossed to the PBX: no event, no INFO, no tone
      expect(agentSummary.digitsReceived ?? []).toEqual([]);
      expect(agentSummary.infos ?? []).toEqual([]);
      const heard = wavChannels(agentSummary.recording!)[0]!;
      expect(heard.length).toBeGreaterThan(8000 * 4);
      expect(await decodeMultimon(heard)).toEqual([]);
      expect(await decodeSpandsp(heard)).toEqual([]);

      // the stereo recording: the caller masked on the left, the agent on the right
      const call = [...ends][0]!;
      const recording = `${hushpay.dataDir}/recordings/${call.callId}.wav`;
      const [left, right] = wavChannels(recording);
      expect(left!.length).toBeGreaterThan(8000 * 4);
      expect(await decodeMultimon(left!)).toEqual([]);
      expect(await decodeSpandsp(left!)).toEqual([]);
      expect(rms(right!)).toBeGreaterThan(100); // the agent's speech is there
      // and no file, log or stat holds the number
      for (const line of hushpay.logLines) expect(line).not.toContain('41111111');
      expect(readFileSync(recording).includes(Buffer.from(CARD))).toBe(false);
    },
    30_000,
  );

  it('propagates CANCEL: the ringing agent hears it, the caller gets 487', async () => {
    const { agent, caller, to } = await setup({ agent: { ringMs: 3000 } });
    const placed = caller.placeCall({ to });
    await waitFor(() => [...caller.calls][0]?.state === 'ringing');
    void [...caller.calls][0]!.hangup(); // before the answer: a CANCEL
    const summary = await placed;
    expect(summary.status).toBe(487);
    const agentSummary = await (await agent.nextCall()).ended;
    expect(agentSummary.reason).toBe('cancelled');
    await waitFor(() => ends.length === 1);
    expect(ends[0]!.end.reason).toBe('cancelled');
  });

  it.each([
    [486, 486],
    [404, 404],
    [503, 503],
    [500, 502],
    [603, 603],
  ])('maps the agent leg’s %i to %i for the caller', async (agentStatus, callerStatus) => {
    const { caller, to } = await setup({ agent: { reject: agentStatus } });
    const summary = await caller.placeCall({ to });
    expect(summary.status).toBe(callerStatus);
  });

  it('answers 408 when the PBX never answers, and 404 when no tenant takes the call', async () => {
    const silent = await freePort();
    const { caller, to } = await setup({ pbx: `sip:agents@127.0.0.1:${silent}` });
    const summary = await caller.placeCall({ to });
    expect(summary.status).toBe(408);
    await hushpay!.close();
    hushpay = await startTestHushpay({ pbx: 'sip:a@127.0.0.1:1', raw: { tenants: [{ id: 'shop', pbx: 'sip:a@127.0.0.1:1', numbers: ['0120*'] }] } });
    const noRoute = await caller.placeCall({ to: `sip:999@127.0.0.1:${hushpay.sipPort}` });
    expect(noRoute.status).toBe(404);
  }, 20_000);

  it('carries a call whose recording cannot be created, and says why when it ends', async () => {
    const { agent, caller, to, hushpay } = await setup();
    // the recordings folder replaced by a file: creating the call's recording fails (ENOTDIR)
    rmSync(join(hushpay.dataDir, 'recordings'), { recursive: true });
    writeFileSync(join(hushpay.dataDir, 'recordings'), 'not a folder');
    const summary = await caller.placeCall({ to, play: speech().subarray(0, 8000), hangupAfterMs: 800 });
    expect(summary).toMatchObject({ status: 200, answered: true, reason: 'hangup' });
    expect((await (await agent.nextCall()).ended).received.audioPackets).toBeGreaterThan(20); // the media still flowed
    await waitFor(() => ends.length === 1);
    const ended = hushpay.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'call ended');
    expect(ended).toMatchObject({ reason: 'caller', recordingError: 'cannot create the recording: ENOTDIR' });
  });

  it('ends a call whose caller sends no RTP, and refuses calls beyond the limit with 503', async () => {
    const { agent, caller, to, hushpay } = await setup({ raw: { media: { noRtpTimeoutMs: 1000 }, calls: { max: 1 } } });
    const silentCall = caller.placeCall({ to, sendRtp: false });
    await waitFor(() => hushpay.b2bua.calls.size === 1 && [...hushpay.b2bua.calls.values()][0]!.state === 'active');
    const refused = await caller.placeCall({ to });
    expect(refused.status).toBe(503);
    const summary = await silentCall;
    expect(summary).toMatchObject({ status: 200, reason: 'remote-hangup' });
    expect((await (await agent.nextCall()).ended).reason).toBe('remote-hangup');
    await waitFor(() => ends.some((e) => e.end.reason === 'no-rtp'));
  });

  it('answers the PBX’s digest challenge with the tenant’s credentials from the environment', async () => {
    const pbx = await rawUserAgent();
    cleanup.push(() => pbx.close());
    const authorizations: string[] = [];
    pbx.ua.on('invite', (invite, res) => {
      const auth = invite.headers.get('Authorization');
      if (!auth) {
        res.send(401, { headers: [['WWW-Authenticate', 'Digest realm="pbx.example", nonce="n0nce-1", algorithm=SHA-256, qop="auth"']] });
        return;
      }
      authorizations.push(auth);
      void pbx.ua.createUAS(invite, res, { localSdp: sdp(pbx.rtpPort, 'sendrecv') });
    });
    process.env['HUSHPAY_TEST_PBX_PASSWORD'] = 's3cret-pbx';
    hushpay = await startTestHushpay({
      pbx: `sip:agents@127.0.0.1:${pbx.port}`,
      raw: { tenants: [{ id: 'shop', pbx: `sip:agents@127.0.0.1:${pbx.port}`, numbers: ['*'], pbxCredentials: { username: 'hushpay', passwordEnv: 'HUSHPAY_TEST_PBX_PASSWORD' } }] },
    });
    const trunk = await rawUserAgent();
    cleanup.push(() => trunk.close());
    const dialog = await trunk.ua.createUAC(`sip:100@127.0.0.1:${hushpay.sipPort}`, { localSdp: sdp(trunk.rtpPort, 'sendrecv') });
    expect(authorizations).toHaveLength(1);
    // the response the PBX would check, computed independently of hushpay's digest code
    const a = authorizations[0]!;
    const field = (name: string): string => new RegExp(`${name}="?([^",]+)"?`).exec(a)?.[1] ?? '';
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const ha1 = sha(`hushpay:pbx.example:s3cret-pbx`);
    const ha2 = sha(`INVITE:${field('uri')}`);
    expect(field('response')).toBe(sha(`${ha1}:n0nce-1:${field('nc')}:${field('cnonce')}:auth:${ha2}`));
    expect(a).not.toContain('s3cret-pbx');
    for (const line of hushpay.logLines) expect(line).not.toContain('s3cret-pbx');
    await dialog.destroy();
    await waitFor(() => hushpay!.b2bua.calls.size === 0);
  });

  it('passes hold and resume (re-INVITE with sendonly / sendrecv) through to the agent', async () => {
    // a PBX that answers hold with recvonly, and records the directions it was offered
    const offered: string[] = [];
    const pbx = await rawUserAgent();
    cleanup.push(() => pbx.close());
    pbx.ua.on('invite', (invite, res) =>
      void pbx.ua.createUAS(invite, res, { localSdp: sdp(pbx.rtpPort, 'sendrecv') }).then((d) =>
        d.on('modify', (req) => {
          const dir = /a=(sendrecv|sendonly|recvonly|inactive)/.exec(req.sdp)?.[1] ?? '?';
          offered.push(dir);
          req.respond(200, { sdp: sdp(pbx.rtpPort, dir === 'sendonly' ? 'recvonly' : 'sendrecv') });
        }),
      ),
    );
    hushpay = await startTestHushpay({ pbx: `sip:agents@127.0.0.1:${pbx.port}` });
    const trunk = await rawUserAgent();
    cleanup.push(() => trunk.close());
    const dialog = await trunk.ua.createUAC(`sip:100@127.0.0.1:${hushpay.sipPort}`, { localSdp: sdp(trunk.rtpPort, 'sendrecv') });
    const held = await dialog.modify(sdp(trunk.rtpPort, 'sendonly'));
    expect(held).toContain('a=recvonly');
    const resumed = await dialog.modify(sdp(trunk.rtpPort, 'sendrecv'));
    expect(resumed).toContain('a=sendrecv');
    expect(offered).toEqual(['sendonly', 'sendrecv']);
    await dialog.destroy();
    await waitFor(() => hushpay!.b2bua.calls.size === 0);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 8000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

function sdp(port: number, direction: string): string {
  return `v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=${direction}\r\n`;
}

/** A bare SIP user agent on loopback UDP (for what sip-sim does not do: re-INVITEs). */
async function rawUserAgent(): Promise<{ ua: SipUserAgent; port: number; rtpPort: number; close: () => Promise<void> }> {
  let ua: SipUserAgent | undefined;
  const transport = await UdpTcpTransport.listen({
    host: '127.0.0.1',
    port: 0,
    tcp: false,
    listener: { message: (m: SipMessage, from: SipAddress) => ua?.receive(m, from), malformed: () => {} },
  });
  ua = new SipUserAgent({ transport, clock: systemClock, timers: { T1: 100, T2: 800, T4: 1000 } });
  const rtpPort = await freePort();
  return {
    ua,
    port: transport.local.udp!.port,
    rtpPort,
    close: async () => {
      await ua!.close();
      await transport.close();
    },
  };
}

