#!/usr/bin/env node
/**
 * The `sip-sim` command: `sip-sim caller` places one call, `sip-sim agent` answers calls. Both
 * print every record as one JSON line on stdout (records.ts) and nothing else there; usage
 * errors go to stderr. Only this file writes to the process's streams.
 *
 * Exit status: 0 the call(s) ended normally, 1 a failure (a call rejected, unanswered or
 * broken; a socket that could not be opened), 2 a usage error.
 */

import { parseArgs } from 'node:util';
import { UsageError } from '../src/errors.ts';
import { describeFailure, formatFailure } from '../src/tools/failure.ts';
import { SimAgent, type SimAgentOptions } from './agent.ts';
import type { CallMediaOptions, CallSummary } from './call.ts';
import { parseHostPort, type PlaceCallOptions, SimCaller } from './caller.ts';
import type { SimPhone } from './phone.ts';
import { DTMF_METHODS, type DtmfMethod, type EndedRecord, jsonLine, type ListeningRecord, type SimRecord } from './records.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Interval of the periodic `rtp` records the CLI asks for. */
const CLI_RTP_REPORT_MS = 5000;

export interface SimCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted to stop (SIGINT, SIGTERM): calls are hung up and the command exits. */
  readonly signal?: AbortSignal;
}

const TOP_USAGE = `Usage: sip-sim <caller|agent> [options]

A caller, agent and trunk simulator on real UDP: places and answers SIP calls with G.711
audio, keys digits in-band, as RFC 4733 events or as SIP INFO, records what it hears, and
prints what happens as JSON lines on stdout.

Run 'sip-sim caller --help' or 'sip-sim agent --help' for their options.
`;

const DIGIT_OPTIONS = `  --digits KEYS           keys to press: 0-9 * # A-D
  --dtmf METHOD           inband | rfc4733 | info | both (default rfc4733)
  --after-ms N            audio before the first key, ms (default 500)
  --tone-ms N             tone length, ms (default 100)
  --gap-ms N              gap between keys, ms (default 100)
  --level-dbm0 N          low-group tone level, dBm0 (default -8; high group +2 dB)
  --audio-during-events   keep sending audio during RFC 4733 events (a phone pauses it)`;

const CALLER_USAGE = `Usage: sip-sim caller --to SIP-URI [options]

Places one call, sends audio (a file, or silence) paced in real time, keys digits, and
hangs up after --hangup-after-ms (or when the far end does).

Options:
  --to SIP-URI            Request-URI and To, e.g. sip:4000@127.0.0.1:5060 (required)
  --target HOST:PORT      send the INVITE here instead of the URI's host
  --local HOST:PORT       bind SIP and RTP here (default 127.0.0.1:0)
  --advertise HOST        address to put in Contact, Via and SDP (default: the bound one)
  --from USER             From user part (default caller)
  --header 'X-Name: value'  an extra INVITE header (repeatable)
  --play FILE             .wav, .ul or .al at 8000 Hz (mono, or channels mixed)
${DIGIT_OPTIONS}
  --hangup-after-ms N     send BYE this long after the answer
  --record FILE           write what is heard to FILE (8 kHz mono 16-bit WAV)
  -h, --help              show this text

Exit status: 0 the call was answered and ended, 1 it was rejected or failed, 2 usage error.
`;

const AGENT_USAGE = `Usage: sip-sim agent --listen HOST:PORT [options]

Answers every INVITE (many at once), records what it hears, plays a file back (or
silence), and counts the telephone-event packets and SIP INFO it receives.

Options:
  --listen HOST:PORT      SIP address to answer on; port 0 picks one (see the
                          "listening" record) (required)
  --advertise HOST        address to put in Contact, Via and SDP (default: the listening
                          one, or 127.0.0.1 when listening on 0.0.0.0)
  --ring-ms N             send 180 Ringing and wait N ms before answering
  --reject STATUS         answer every INVITE with this failure status, e.g. 486
  --play FILE             .wav, .ul or .al at 8000 Hz to send on each call
  --record FILE           record each call: FILE with --calls 1, else NAME-<n>.wav
${DIGIT_OPTIONS}
  --hangup-after-ms N     send BYE this long after answering
  --calls N               exit after N calls have ended (default: run until interrupted)
  -h, --help              show this text

Exit status: 0 every call ended normally (a rejection asked for by --reject is normal),
1 a call failed, 2 usage error.
`;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: readonly string[], options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>): Values {
  try {
    return parseArgs({ args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true }).values;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) throw new UsageError(err instanceof Error ? err.message : String(err));
    throw err;
  }
}

function stringOption(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function numberOption(values: Values, name: string, min: number, max: number): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got '${text}'`);
  return n;
}

function addressOption(values: Values, name: string): { host: string; port: number } | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const address = parseHostPort(text);
  if (!address) throw new UsageError(`--${name} must be HOST:PORT, got '${text}'`);
  return address;
}

const HEADER_NAME = /^[A-Za-z0-9!%'*+\-.^_`|~]+$/;

function headerOption(text: string): [string, string] {
  const colon = text.indexOf(':');
  const name = colon > 0 ? text.slice(0, colon).trim() : '';
  if (!HEADER_NAME.test(name)) throw new UsageError(`--header must be 'Name: value', got '${text}'`);
  return [name, text.slice(colon + 1).trim()];
}

/** The options both commands share: what a call sends. */
function mediaOptions(values: Values): CallMediaOptions {
  const dtmf = stringOption(values, 'dtmf');
  if (dtmf !== undefined && !DTMF_METHODS.includes(dtmf as DtmfMethod)) throw new UsageError(`--dtmf must be one of ${DTMF_METHODS.join(', ')}`);
  const digits = stringOption(values, 'digits');
  if (dtmf !== undefined && digits === undefined) throw new UsageError('--dtmf needs --digits');
  const entries: [keyof CallMediaOptions, unknown][] = [
    ['play', stringOption(values, 'play')],
    ['digits', digits],
    ['dtmf', dtmf],
    ['afterMs', numberOption(values, 'after-ms', 0, 3_600_000)],
    ['toneMs', numberOption(values, 'tone-ms', 1, 60_000)],
    ['gapMs', numberOption(values, 'gap-ms', 0, 60_000)],
    ['levelDbm0', numberOption(values, 'level-dbm0', -60, 3)],
    ['audioDuringEvents', values['audio-during-events'] === true ? true : undefined],
    ['hangupAfterMs', numberOption(values, 'hangup-after-ms', 0, 86_400_000)],
  ];
  return Object.fromEntries(entries.filter(([, v]) => v !== undefined)) as CallMediaOptions;
}

const MEDIA_FLAGS = {
  play: { type: 'string' },
  digits: { type: 'string' },
  dtmf: { type: 'string' },
  'after-ms': { type: 'string' },
  'tone-ms': { type: 'string' },
  'gap-ms': { type: 'string' },
  'level-dbm0': { type: 'string' },
  'audio-during-events': { type: 'boolean' },
  'hangup-after-ms': { type: 'string' },
  record: { type: 'string' },
  advertise: { type: 'string' },
} as const;

/** Prints every record of `phone`, and stops it when `signal` aborts. */
function attach(phone: SimPhone, io: SimCliIo): () => void {
  phone.on('record', (record: SimRecord) => io.stdout(jsonLine(record)));
  const stop = (): void => void phone.close();
  io.signal?.addEventListener('abort', stop, { once: true });
  return () => io.signal?.removeEventListener('abort', stop);
}

const endedNormally = (s: Pick<CallSummary, 'answered' | 'reason'>): boolean => s.answered && (s.reason === 'hangup' || s.reason === 'remote-hangup' || s.reason === 'closed');

async function caller(args: readonly string[], io: SimCliIo): Promise<number> {
  const values = parse(args, { ...MEDIA_FLAGS, to: { type: 'string' }, target: { type: 'string' }, local: { type: 'string' }, from: { type: 'string' }, header: { type: 'string', multiple: true } });
  if (values['help'] === true) {
    io.stdout(CALLER_USAGE);
    return EXIT_OK;
  }
  const to = stringOption(values, 'to');
  if (to === undefined) throw new UsageError('--to is required');
  if (!/^sips?:/i.test(to)) throw new UsageError(`--to must be a SIP URI (sip:user@host[:port]), got '${to}'`);
  const target = addressOption(values, 'target');
  const local = addressOption(values, 'local');
  const record = stringOption(values, 'record');
  const from = stringOption(values, 'from');
  const headers = ((values['header'] as string[] | undefined) ?? []).map(headerOption);
  const options: PlaceCallOptions = {
    ...mediaOptions(values),
    to,
    headers,
    ...(target ? { target } : {}),
    ...(record !== undefined ? { record } : {}),
    ...(from !== undefined ? { fromUser: from } : {}),
  };
  const advertise = stringOption(values, 'advertise');
  const phone = await SimCaller.start({
    ...(local ? { host: local.host, port: local.port } : {}),
    ...(advertise !== undefined ? { advertise } : {}),
    rtpReportIntervalMs: CLI_RTP_REPORT_MS,
  });
  const detach = attach(phone, io);
  try {
    const summary = await phone.placeCall(options);
    return endedNormally(summary) ? EXIT_OK : EXIT_FAILURE;
  } finally {
    detach();
    await phone.close();
  }
}

async function agent(args: readonly string[], io: SimCliIo): Promise<number> {
  const values = parse(args, {
    ...MEDIA_FLAGS,
    listen: { type: 'string' },
    'ring-ms': { type: 'string' },
    reject: { type: 'string' },
    calls: { type: 'string' },
  });
  if (values['help'] === true) {
    io.stdout(AGENT_USAGE);
    return EXIT_OK;
  }
  const listen = addressOption(values, 'listen');
  if (!listen) throw new UsageError('--listen is required');
  const calls = numberOption(values, 'calls', 1, 1_000_000);
  if (calls !== undefined && !Number.isInteger(calls)) throw new UsageError('--calls must be a whole number');
  const reject = numberOption(values, 'reject', 300, 699);
  if (reject !== undefined && !Number.isInteger(reject)) throw new UsageError('--reject must be a SIP status');
  const ringMs = numberOption(values, 'ring-ms', 0, 600_000);
  const record = stringOption(values, 'record');
  const advertise = stringOption(values, 'advertise');
  const options: SimAgentOptions = {
    ...mediaOptions(values),
    host: listen.host,
    port: listen.port,
    rtpReportIntervalMs: CLI_RTP_REPORT_MS,
    ...(advertise !== undefined ? { advertise } : {}),
    ...(ringMs !== undefined ? { ringMs } : {}),
    ...(reject !== undefined ? { reject } : {}),
    ...(record !== undefined ? { record: calls === 1 ? () => record : record } : {}),
  };
  const phone = await SimAgent.listen(options);
  const detach = attach(phone, io);
  // where to call, first (with --listen HOST:0 this is how a script learns the port)
  const listening: ListeningRecord = { event: 'listening', atMs: 0, phone: 'agent', sip: `udp:${phone.sip.host}:${phone.sip.port}` };
  io.stdout(jsonLine(listening));
  let failed = false;
  let ended = 0;
  try {
    await new Promise<void>((resolve) => {
      phone.on('ended', (r: EndedRecord) => {
        const normal = endedNormally({ answered: r.status === 200, reason: r.reason }) || (r.reason === 'rejected' && r.status === reject);
        if (!normal) failed = true;
        if (calls !== undefined && ++ended >= calls) resolve();
      });
      phone.on('error', () => {
        failed = true; // a call that could not even be set up (an unreadable --play file)
      });
      if (io.signal?.aborted) resolve();
      io.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    detach();
    await phone.close();
  }
  return failed ? EXIT_FAILURE : EXIT_OK;
}

const COMMANDS: ReadonlyMap<string, (args: readonly string[], io: SimCliIo) => Promise<number>> = new Map([
  ['caller', caller],
  ['agent', agent],
]);

/** Runs `sip-sim` with `argv` (the arguments after the program name); returns the exit status. */
export async function runSimCli(argv: readonly string[], io: SimCliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '-h' || name === '--help' || name === 'help') {
    io.stdout(TOP_USAGE);
    return EXIT_OK;
  }
  const command = name === undefined ? undefined : COMMANDS.get(name);
  if (command === undefined) {
    io.stderr(`${name === undefined ? '' : `sip-sim: unknown command '${name}'\n`}${TOP_USAGE}`);
    return EXIT_USAGE;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    io.stderr(`sip-sim ${name}: ${formatFailure(describeFailure(err))}\n`);
    if (err instanceof UsageError) {
      io.stderr(`Run 'sip-sim ${name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  const stop = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
  process.exitCode = await runSimCli(process.argv.slice(2), {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    signal: stop.signal,
  });
}
