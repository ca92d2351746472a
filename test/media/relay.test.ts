/**
 * RTP endpoints on real UDP sockets: latching to where the peer really sends from, dropping
 * other sources, refusing a source of port 0 (which a forged packet can carry and no peer can
 * be answered on), and giving the ports back on close.
 */

import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RtpEndpoint, RtpPortRange } from '../../src/media/relay.ts';
import { rtpRange } from '../support/hushpay.ts';

const HOST = '127.0.0.1';

async function waitFor(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function peer(): Promise<{ socket: dgram.Socket; port: number; heard: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const heard: Buffer[] = [];
  socket.on('message', (m) => heard.push(m));
  await new Promise<void>((r) => socket.bind(0, HOST, r));
  return { socket, port: socket.address().port, heard };
}

const rtp = (n: number): Buffer => Buffer.from([0x80, 0, 0, n, 0, 0, 0, 0, 0, 0, 0, 1, n]);

let port0Sender = '';
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

beforeAll(() => {
  port0Sender = join(mkdtempSync(join(tmpdir(), 'udp0-')), 'udp_from_port0');
  const built = spawnSync('gcc', ['-O2', '-Wall', '-o', port0Sender, fileURLToPath(new URL('../support/udp_from_port0.c', import.meta.url))], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`gcc failed building udp_from_port0.c: ${built.error?.message ?? built.stderr}`);
});

describe('RtpEndpoint', () => {
  async function open(): Promise<{ range: RtpPortRange; endpoint: RtpEndpoint; received: Buffer[] }> {
    const { portMin, portMax } = rtpRange(10);
    const range = new RtpPortRange(portMin, portMax);
    const received: Buffer[] = [];
    const endpoint = await range.open(HOST, (data) => received.push(Buffer.from(data)));
    cleanup.push(() => endpoint.close());
    return { range, endpoint, received };
  }

  it('latches to the first source, answers it there, and drops every other source', async () => {
    const { endpoint, received } = await open();
    const a = await peer();
    const b = await peer();
    cleanup.push(() => a.socket.close(), () => b.socket.close());
    a.socket.send(rtp(1), endpoint.port, HOST);
    await waitFor(() => received.length === 1, 'the first packet');
    expect(endpoint.remote).toEqual({ host: HOST, port: a.port });
    endpoint.send(rtp(2));
    await waitFor(() => a.heard.length === 1, 'the answer at the latched source');
    b.socket.send(rtp(3), endpoint.port, HOST);
    a.socket.send(rtp(4), endpoint.port, HOST);
    await waitFor(() => received.length === 2, 'the second packet from the latched source');
    expect(received.map((r) => r[12])).toEqual([1, 4]);
    expect(b.heard).toEqual([]);
    expect(endpoint.stats).toMatchObject({ packetsIn: 2, packetsOut: 1, sendErrors: 0 });
  });

  it('drops a packet from source port 0 without latching to it, and still latches to a real peer', async (context) => {
    const { endpoint, received } = await open();
    const sent = spawnSync(port0Sender, [String(endpoint.port)], { encoding: 'utf8' });
    if (sent.status === 77) {
      context.skip(`raw sockets not permitted here (${sent.stderr.trim()}): run as root to send from port 0`);
      return;
    }
    expect(sent.status, sent.stderr).toBe(0);
    await waitFor(() => endpoint.stats.strays === 1, 'the port-0 packet to be counted');
    expect(received).toEqual([]);
    expect(endpoint.remote).toBeUndefined();
    const a = await peer();
    cleanup.push(() => a.socket.close());
    a.socket.send(rtp(1), endpoint.port, HOST);
    await waitFor(() => received.length === 1, 'a real packet after it');
    endpoint.send(rtp(2));
    await waitFor(() => a.heard.length === 1, 'the answer');
    expect(endpoint.remote).toEqual({ host: HOST, port: a.port });
  });

  it('a new address from SDP un-latches, and close() gives both ports back once', async () => {
    const { range, endpoint, received } = await open();
    const a = await peer();
    const b = await peer();
    cleanup.push(() => a.socket.close(), () => b.socket.close());
    a.socket.send(rtp(1), endpoint.port, HOST);
    await waitFor(() => received.length === 1, 'the first packet');
    endpoint.setRemote({ host: HOST, port: b.port }); // a re-INVITE moved the peer
    b.socket.send(rtp(2), endpoint.port, HOST);
    await waitFor(() => received.length === 2, 'the moved peer');
    endpoint.send(rtp(3));
    await waitFor(() => b.heard.length === 1, 'the answer at the new address');
    expect(range.inUse).toBe(1);
    endpoint.close();
    endpoint.close();
    await waitFor(() => range.inUse === 0, 'the ports to be released');
  });
});
