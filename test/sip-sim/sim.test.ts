// sip-sim on real loopback UDP: a SimCaller talking straight to a SimAgent, no hushpay between.
// Audio is made by sox (soxDtmf) or by addDtmfTone, and what the agent recorded is graded by
// multimon-ng, so sip-sim's in-band digits are checked by a decoder that is not hushpay's.

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addDtmfTone } from '../../src/media/dtmf/tones.ts';
import { decode, encode } from '../../src/media/g711.ts';
import { encodeInt16ToWavData, writeWav } from '../../src/media/wav.ts';
import { type DtmfMethod, type SimAgentOptions, SimAgent, SimCaller, type SimPhone, type SimRecord } from '../../sip-sim/index.ts';
import { decodeMultimon } from '../support/referees.ts';
import { soxDtmf } from '../support/soxgen.ts';
import { CountingClock, openSockets, readMonoWav } from './support.ts';

const CLI = fileURLToPath(new URL('../../sip-sim/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sip-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;
const tempPath = (name: string): string => join(dir, `${fileCounter++}-${name}`);

const SAMPLES_PER_MS = 8;
const DIGITS = '4*1#';

let clock: CountingClock;
let socketsBefore: number;
let phones: SimPhone[];

beforeEach(() => {
  clock = new CountingClock();
  socketsBefore = openSockets();
  phones = [];
});

afterEach(async () => {
  await Promise.all(phones.map((p) => p.close()));
  // nothing left open: no timer of any phone, call or SIP transaction, no socket
  expect(clock.pending).toBe(0);
  expect(openSockets()).toBe(socketsBefore);
});

async function startPair(agentOptions: SimAgentOptions = {}): Promise<{ agent: SimAgent; caller: SimCaller; records: SimRecord[] }> {
  const agent = await SimAgent.listen({ clock, ...agentOptions });
  const caller = await SimCaller.start({ clock });
  phones.push(caller, agent);
  const records: SimRecord[] = [];
  for (const phone of [caller, agent]) phone.on('record', (r) => records.push(r));
  return { agent, caller, records };
}

function writeWavFile(samples: Int16Array): string {
  const path = tempPath('play.wav');
  writeFileSync(path, writeWav({ format: 'pcm16', sampleRateHz: 8000, channels: 1 }, encodeInt16ToWavData('pcm16', [samples])));
  return path;
}

describe('sip-sim: a caller and an agent over loopback UDP', () => {
  it("sets up a call and tears it down with the caller's BYE", async () => {
    const { agent, caller, records } = await startPair({ ringMs: 20 });

    const callerSummary = await caller.placeCall({ to: agent.uri(), hangupAfterMs: 400 });
    const agentSummary = await (await agent.nextCall()).ended;

    expect(callerSummary).toMatchObject({ status: 200, reason: 'hangup', answered: true, codec: 'PCMU' });
    expect(agentSummary).toMatchObject({ status: 200, reason: 'remote-hangup', answered: true, callId: callerSummary.callId });
    expect(callerSummary.timing.inviteToRingingMs).not.toBeNull();
    // timers fire on libuv's whole milliseconds, so up to a millisecond early on the monotonic clock
    expect(callerSummary.timing.inviteToAnswerMs).toBeGreaterThanOrEqual(19);
    expect(callerSummary.timing.talkMs).toBeGreaterThanOrEqual(399);
    // 20 ms packets both ways for 400 ms
    for (const s of [callerSummary, agentSummary]) {
      expect(s.sent.packets).toBeGreaterThanOrEqual(19);
      expect(s.received.packets).toBeGreaterThanOrEqual(18);
      expect(s.received.lost).toBe(0);
    }
    const callerEvents = records.filter((r) => r.phone === 'caller').map((r) => r.event);
    expect(callerEvents).toEqual(['invite-sent', 'ringing', 'answered', 'bye-sent', 'rtp', 'ended']);
    const agentEvents = records.filter((r) => r.phone === 'agent').map((r) => r.event);
    expect(agentEvents).toEqual(['invite-received', 'ringing', 'answered', 'bye-received', 'rtp', 'ended']);
  });

  it("tears a call down with the agent's BYE", async () => {
    const { agent, caller } = await startPair({ hangupAfterMs: 300 });

    const callerSummary = await caller.placeCall({ to: agent.uri() });
    const agentSummary = await (await agent.nextCall()).ended;

    expect(callerSummary).toMatchObject({ status: 200, reason: 'remote-hangup' });
    expect(agentSummary).toMatchObject({ status: 200, reason: 'hangup' });
    expect(agentSummary.timing.talkMs).toBeGreaterThanOrEqual(299);
  });

  it("passes the INVITE's X-headers to the agent", async () => {
    const { agent, caller, records } = await startPair();

    await caller.placeCall({ to: agent.uri(), hangupAfterMs: 100, headers: [['X-Customer-Id', 'cust-42'], ['X-Hushpay-Call-Id', 'hp-1']] });
    const call = await agent.nextCall();

    expect(call.inviteHeaders?.get('X-Customer-Id')).toBe('cust-42');
    expect(call.inviteHeaders?.get('X-Hushpay-Call-Id')).toBe('hp-1');
    const invite = records.find((r) => r.event === 'invite-received');
    expect(invite?.event === 'invite-received' && invite.headers['X-Customer-Id']).toBe('cust-42');
  });

  it('reports a rejected call (486) with its status on both sides', async () => {
    const { agent, caller } = await startPair({ ringMs: 20, reject: 486 });

    const callerSummary = await caller.placeCall({ to: agent.uri() });
    const agentSummary = await (await agent.nextCall()).ended;

    expect(callerSummary).toMatchObject({ status: 486, reason: 'rejected', answered: false, codec: null });
    expect(callerSummary.timing.inviteToRingingMs).not.toBeNull();
    expect(agentSummary).toMatchObject({ status: 486, reason: 'rejected', answered: false });
    expect(callerSummary.sent.packets).toBe(0);
  });

  it('records sox-made audio at the agent: same samples, same length, and multimon-ng hears its digits', async () => {
    const source = soxDtmf({ digits: '159#', onMs: 100, gapMs: 100, leadMs: 200, levelDbm0: -10 }); // 1000 ms
    const record = tempPath('agent.wav');
    const { agent, caller } = await startPair({ record: () => record });

    const callerSummary = await caller.placeCall({ to: agent.uri(), play: writeWavFile(source), hangupAfterMs: 1100 });
    const agentSummary = await (await agent.nextCall()).ended;

    const heard = readMonoWav(record);
    expect(agentSummary.recording).toBe(record);
    expect(heard.length).toBe(agentSummary.recordedSamples);
    // one 20 ms packet per tick, every one recorded where its timestamp says (the last may cross the BYE)
    expect(heard.length).toBeGreaterThanOrEqual((callerSummary.sent.audioPackets - 1) * 160);
    expect(Math.abs(heard.length / SAMPLES_PER_MS - 1100)).toBeLessThanOrEqual(40);
    // the file's samples through μ-law, sample-aligned from the first, then silence
    expect(heard.subarray(0, source.length)).toEqual(decode('pcmu', encode('pcmu', source)));
    expect(heard.subarray(source.length).every((s) => Math.abs(s) <= 8)).toBe(true);
    expect((await decodeMultimon(heard)).join('')).toBe('159#');
  });

  it('plays a headerless μ-law file made with addDtmfTone', async () => {
    const samples = new Int16Array(4000); // 500 ms
    addDtmfTone(samples, 800, 800, '7', { levelDbm0: -8, twistDb: 2 });
    addDtmfTone(samples, 2400, 800, '0', { levelDbm0: -8, twistDb: 2 });
    const play = tempPath('play.ul');
    writeFileSync(play, encode('pcmu', samples));
    const record = tempPath('agent.wav');
    const { agent, caller } = await startPair({ record: () => record });

    await caller.placeCall({ to: agent.uri(), play, hangupAfterMs: 600 });
    await (await agent.nextCall()).ended;

    const heard = readMonoWav(record);
    expect(heard.subarray(0, samples.length)).toEqual(decode('pcmu', encode('pcmu', samples)));
    expect((await decodeMultimon(heard)).join('')).toBe('70');
  });

  describe('keys digits by each DTMF method, and the agent receives them as sent', () => {
    const TONE_TICKS = 5; // 100 ms
    const EVENT_PACKETS_PER_KEY = TONE_TICKS - 1 + 3; // growing durations 160…640, then 800 three times (RFC 4733 §2.5.1.4)

    async function keyDigits(dtmf: DtmfMethod) {
      const record = tempPath(`${dtmf}.wav`);
      const { agent, caller } = await startPair({ record: () => record });
      const callerSummary = await caller.placeCall({ to: agent.uri(), digits: DIGITS, dtmf, afterMs: 100, hangupAfterMs: 1100 });
      const agentSummary = await (await agent.nextCall()).ended;
      expect(callerSummary.digitsSent.map((d) => d.digit).join('')).toBe(DIGITS);
      expect(callerSummary.digitsSent.every((d) => d.dtmf === dtmf)).toBe(true);
      return { callerSummary, agentSummary, heard: readMonoWav(record) };
    }

    it("inband: the tones are in the agent's recording, and nothing else carries them", async () => {
      const { callerSummary, agentSummary, heard } = await keyDigits('inband');

      expect((await decodeMultimon(heard)).join('')).toBe(DIGITS);
      expect(callerSummary.sent.telephoneEventPackets).toBe(0);
      expect(agentSummary.received.telephoneEventPackets).toBe(0);
      expect(agentSummary.infos).toEqual([]);
    });

    it('rfc4733: the agent counts the event packets and TelephoneEventReceiver rebuilds the keys; audio pauses meanwhile', async () => {
      const { callerSummary, agentSummary, heard } = await keyDigits('rfc4733');

      const eventPackets = DIGITS.length * EVENT_PACKETS_PER_KEY;
      expect(callerSummary.sent.telephoneEventPackets).toBe(eventPackets);
      expect(agentSummary.received.telephoneEventPackets).toBe(eventPackets);
      expect(agentSummary.digitsReceived).toEqual([...DIGITS].map((digit) => ({ digit, via: 'rfc4733', durationMs: 100 })));
      // a real phone sends no audio while it sends a key's events
      expect(callerSummary.sent.audioPackets).toBe(callerSummary.pacing.ticks - eventPackets);
      expect(await decodeMultimon(heard)).toEqual([]);
      expect(agentSummary.infos).toEqual([]);
    });

    it('info: the agent receives one application/dtmf-relay INFO per key', async () => {
      const { callerSummary, agentSummary, heard } = await keyDigits('info');

      expect(agentSummary.infos).toEqual([...DIGITS].map((d) => ({ contentType: 'application/dtmf-relay', body: `Signal=${d}\r\nDuration=100\r\n` })));
      expect(agentSummary.digitsReceived.map((d) => d.via)).toEqual(['info', 'info', 'info', 'info']);
      expect(callerSummary.sent.telephoneEventPackets).toBe(0);
      expect(agentSummary.received.telephoneEventPackets).toBe(0);
      expect(await decodeMultimon(heard)).toEqual([]);
    });

    it('both: each key is a tone in the audio and RFC 4733 events at the same time', async () => {
      const { callerSummary, agentSummary, heard } = await keyDigits('both');

      expect((await decodeMultimon(heard)).join('')).toBe(DIGITS);
      expect(agentSummary.digitsReceived.map((d) => d.digit).join('')).toBe(DIGITS);
      expect(agentSummary.received.telephoneEventPackets).toBe(DIGITS.length * EVENT_PACKETS_PER_KEY);
      expect(callerSummary.sent.audioPackets).toBe(callerSummary.pacing.ticks); // the tone needs the audio
    });
  });

  it('refuses options it cannot honour before sending anything', async () => {
    const { agent, caller } = await startPair();

    await expect(caller.placeCall({ to: agent.uri(), digits: '12x' })).rejects.toThrow(/position 2/);
    await expect(caller.placeCall({ to: agent.uri(), digits: '1', dtmf: 'both', audioDuringEvents: false })).rejects.toThrow(/cannot pause/);
    await expect(caller.placeCall({ to: agent.uri(), play: tempPath('missing.wav') })).rejects.toMatchObject({ code: 'ENOENT' });
    expect(caller.calls).toEqual([]);
  });

  it('close() with a call up hangs it up, and closing twice is harmless', async () => {
    const { agent, caller } = await startPair();
    const placed = caller.placeCall({ to: agent.uri() });
    const agentCall = await agent.nextCall();
    await new Promise((r) => setTimeout(r, 200));

    const first = caller.close();
    expect(caller.close()).toBe(first);
    await first;

    expect(await placed).toMatchObject({ reason: 'closed', status: 200, answered: true });
    expect(await agentCall.ended).toMatchObject({ reason: 'remote-hangup' });
    expect(caller.calls).toEqual([]);
  });

  it('closing the caller while the agent rings cancels the INVITE', async () => {
    const { agent, caller } = await startPair({ ringMs: 10_000 });
    const placed = caller.placeCall({ to: agent.uri() });
    const agentCall = await agent.nextCall();
    await new Promise((r) => setTimeout(r, 50)); // the 180 is back: a CANCEL may be sent

    await caller.close();

    expect(await placed).toMatchObject({ reason: 'closed', answered: false });
    expect(await agentCall.ended).toMatchObject({ reason: 'cancelled', status: 487 });
  });

  it('closing the agent while calls are up ends them all', async () => {
    const { agent, caller } = await startPair();
    const placed = [caller.placeCall({ to: agent.uri() }), caller.placeCall({ to: agent.uri() }), caller.placeCall({ to: agent.uri() })];
    const calls = await Promise.all([agent.nextCall(), agent.nextCall(), agent.nextCall()]);
    expect(new Set(calls.map((c) => c.localRtp?.port)).size).toBe(3); // one RTP socket per call
    await new Promise((r) => setTimeout(r, 100));

    await agent.close();

    for (const summary of await Promise.all(placed)) expect(summary).toMatchObject({ reason: 'remote-hangup' });
    for (const call of calls) expect(await call.ended).toMatchObject({ reason: 'closed' });
    await expect(agent.nextCall()).rejects.toThrow(/closed/);
  });
});

// --- the CLI as child processes ---------------------------------------------------------------

function run(args: readonly string[]): { child: ChildProcessWithoutNullStreams; lines: string[]; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, lines, exit, stderr: () => stderr };
}

async function waitForLine(lines: string[], test: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = lines.find(test);
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no such line in ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function parseRecords(lines: readonly string[]): { event: string; phone: string }[] {
  return lines.map((line) => {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || typeof (value as { event?: unknown }).event !== 'string') throw new Error(`not a record: ${line}`);
    return value as { event: string; phone: string };
  });
}

describe('sip-sim CLI', () => {
  it('places one short call from caller to agent, both printing JSON lines and exiting 0', async () => {
    const record = tempPath('cli-agent.wav');
    const agent = run(['agent', '--listen', '127.0.0.1:0', '--calls', '1', '--record', record]);
    const listening = JSON.parse(await waitForLine(agent.lines, (l) => l.includes('"listening"'))) as { sip: string };
    const port = listening.sip.split(':').at(-1);

    const caller = run(['caller', '--to', `sip:agent@127.0.0.1:${port}`, '--digits', '12', '--dtmf', 'inband', '--after-ms', '40', '--hangup-after-ms', '500', '--header', 'X-Customer-Id: 7']);

    expect(await caller.exit).toBe(0);
    expect(await agent.exit).toBe(0);
    const callerRecords = parseRecords(caller.lines);
    const agentRecords = parseRecords(agent.lines);
    expect(callerRecords.map((r) => r.event)).toEqual(['invite-sent', 'answered', 'digit-sent', 'digit-sent', 'bye-sent', 'rtp', 'ended']);
    expect(agentRecords.map((r) => r.event)).toEqual(['listening', 'invite-received', 'answered', 'bye-received', 'rtp', 'ended']);
    expect(agentRecords[1]).toMatchObject({ headers: { 'X-Customer-Id': '7' } });
    expect(agentRecords.at(-1)).toMatchObject({ reason: 'remote-hangup', status: 200 });
    expect((await decodeMultimon(readMonoWav(record))).join('')).toBe('12');
  });

  it('prints help (exit 0) and refuses bad usage (exit 2)', async () => {
    const help = run(['caller', '--help']);
    expect(await help.exit).toBe(0);
    expect(help.lines.join('\n')).toMatch(/^Usage: sip-sim caller/);

    const bad = run(['caller', '--to', 'sip:a@127.0.0.1:5060', '--dtmf', 'smoke', '--digits', '1']);
    expect(await bad.exit).toBe(2);
    expect(bad.stderr()).toMatch(/HP_ERR_USAGE: --dtmf must be one of/);

    const missing = run(['agent']);
    expect(await missing.exit).toBe(2);
  });

  it('exits 1 when the call is rejected', async () => {
    const agent = run(['agent', '--listen', '127.0.0.1:0', '--calls', '1', '--reject', '486']);
    const listening = JSON.parse(await waitForLine(agent.lines, (l) => l.includes('"listening"'))) as { sip: string };
    const caller = run(['caller', '--to', `sip:agent@${listening.sip.slice('udp:'.length)}`]);

    expect(await caller.exit).toBe(1);
    expect(await agent.exit).toBe(0); // it rejected as told
    expect(parseRecords(caller.lines).at(-1)).toMatchObject({ event: 'ended', reason: 'rejected', status: 486 });
  });
});
