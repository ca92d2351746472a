#!/usr/bin/env node
/**
 * The `hushpay` command. Each subcommand is an entry in COMMANDS: its usage text and a `run`
 * that parses its own arguments (node:util parseArgs) and calls a tool in src/tools/, which
 * returns results; only this file writes to stdout and stderr.
 *
 * Exit status: 0 done, 1 a failure (unreadable file, bad header, a file of a folder that
 * failed), 2 a usage error. Every error is printed as `hushpay <command>: CODE: message`, the
 * code being the error's stable code (src/errors.ts) or a system errno code (ENOENT, …).
 */

import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';
import { MASK_MODES, type MaskMode } from './media/dtmf/engine.ts';
import { type DetectedDigit, detectFile } from './tools/detect.ts';
import { describeFailure, formatFailure } from './tools/failure.ts';
import { ProgressReporter } from './tools/progress.ts';
import { DEFAULT_SCRUB_MODE, type ScrubResult, scrubFile, scrubTree } from './tools/scrub.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a command writes; the real process streams, or buffers in a test. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stderrIsTTY: boolean;
  readonly stderrColumns: number | undefined;
  /**
   * Reads a secret the user types or pipes in (`hushpay users add` without --password-env):
   * the first line of stdin, not echoed on a terminal. Absent: stdin cannot be read.
   */
  readonly readSecret?: (prompt: string) => Promise<string>;
}

export interface Command {
  /** One line for `hushpay --help`. */
  readonly summary: string;
  /** The text of `hushpay <command> --help`. */
  readonly usage: string;
  /** Runs with the arguments after the command name; returns the exit status. */
  run(args: readonly string[], io: CliIo): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// detect
// ---------------------------------------------------------------------------------------------

const DETECT_USAGE = `Usage: hushpay detect FILE

Prints every DTMF digit found in a recording, one JSON line each, in time order:
  {"digit":"5","startMs":1200,"endMs":1280}
startMs and endMs are the tone's start and end in ms from the start of the recording,
rounded to whole ms. In a stereo recording each channel is searched on its own and every
line also carries "channel":0 (left) or "channel":1 (right). No digits: no output.
The output holds the digits themselves (card numbers, PINs): treat it as card data.

FILE is chosen by its extension:
  .wav  16-bit PCM, μ-law or A-law; mono or stereo; 8000 Hz
  .ul   headerless μ-law, 8000 Hz mono
  .al   headerless A-law, 8000 Hz mono
The DTMF engine works at 8000 Hz and hushpay does not resample: convert other rates first
(e.g. sox in.wav -r 8000 out.wav).

Options:
  -h, --help  show this text

Exit status: 0 done (whether or not digits were found), 1 the file could not be read,
2 usage error.
`;

function digitLine(d: DetectedDigit): string {
  const line: { digit: string; startMs: number; endMs: number; channel?: number } = { digit: d.digit, startMs: d.startMs, endMs: d.endMs };
  if (d.channel !== undefined) line.channel = d.channel;
  return JSON.stringify(line);
}

const detect: Command = {
  summary: 'print every DTMF digit in a recording (JSON lines)',
  usage: DETECT_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {});
    if (values['help'] === true) return help(this, io);
    checkPositionals(positionals, ['FILE']);
    const report = await detectFile(positionals[0]!);
    io.stdout(report.digits.map((d) => `${digitLine(d)}\n`).join(''));
    return EXIT_OK;
  },
};

// ---------------------------------------------------------------------------------------------
// scrub
// ---------------------------------------------------------------------------------------------

const SCRUB_USAGE = `Usage: hushpay scrub IN OUT [--mode silence|flat|noise]

Writes a copy of the recording IN to OUT with every DTMF tone removed: the same format
(WAV format tag, channels and rate; a raw .ul/.al file stays raw of the same law), the same
length, sample-aligned with IN. Audio outside the tones is copied unchanged (G.711 byte for
byte). Prints how many tones were removed and their total length. WAV metadata chunks
(LIST, cue, ...) are not copied.

If IN is a directory, OUT is a directory (created if missing): every .wav, .ul and .al file
under IN is scrubbed into the same relative path under OUT, with progress on stderr and a
summary at the end. A file that fails (a bad header, an unsupported rate) is reported with
its error code and skipped. Symbolic links are not followed.

IN and OUT are kinds of recording by extension, as for 'hushpay detect'; OUT must have IN's
extension. IN is never written: OUT naming IN (or, for folders, either inside the other) is
refused.

Options:
  --mode silence  replace each tone with silence (default)
  --mode flat     replace it with a soft flat beep, so a listener hears where a tone was
  --mode noise    replace it with comfort noise
  -h, --help      show this text

Exit status: 0 everything scrubbed, 1 a failure (for a folder: any file failed),
2 usage error.
`;

function formatMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

function tones(count: number): string {
  return `${count} ${count === 1 ? 'tone' : 'tones'}`;
}

function scrubSummary(result: ScrubResult): string {
  const perChannel = result.channels > 1
    ? ` (${result.perChannel.map((c, i) => `channel ${i}: ${c.removedTones}`).join(', ')})`
    : '';
  return `removed ${tones(result.removedTones)}${perChannel}, ${formatMs(result.removedMs)} in total`;
}

function parseMode(value: string | boolean | undefined): MaskMode {
  if (value === undefined) return DEFAULT_SCRUB_MODE;
  const mode = MASK_MODES.find((m) => m === value);
  if (mode === undefined) throw new UsageError(`--mode must be one of ${MASK_MODES.join(', ')}, got '${String(value)}'`);
  return mode;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false; // scrubFile reports the real error (ENOENT, …) with its code
  }
}

const scrub: Command = {
  summary: 'copy a recording (or a folder of them) with every DTMF tone removed',
  usage: SCRUB_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { mode: { type: 'string' } });
    if (values['help'] === true) return help(this, io);
    const mode = parseMode(values['mode']);
    checkPositionals(positionals, ['IN', 'OUT']);
    const inPath = positionals[0]!;
    const outPath = positionals[1]!;

    if (!(await isDirectory(inPath))) {
      const result = await scrubFile(inPath, outPath, { mode });
      io.stdout(`${inPath} -> ${outPath}: ${scrubSummary(result)}\n`);
      return EXIT_OK;
    }

    const progress = new ProgressReporter({
      label: 'scrub',
      write: io.stderr,
      isTTY: io.stderrIsTTY,
      ...(io.stderrColumns === undefined ? {} : { columns: io.stderrColumns }),
    });
    const tree = await scrubTree(inPath, outPath, {
      mode,
      onProgress: (p) => {
        if (p.finished?.ok === false) progress.message(`hushpay scrub: failed: ${p.finished.path}: ${formatFailure(p.finished.failure)}`);
        progress.update(p);
      },
    });
    progress.finish();
    const failed = tree.failed > 0 ? `; ${tree.failed} failed` : '';
    io.stdout(
      `scrubbed ${tree.scrubbed} of ${tree.files.length} files into ${outPath}: ` +
        `removed ${tones(tree.removedTones)}, ${formatMs(tree.removedMs)} in total${failed}\n`,
    );
    return tree.failed > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};

// ---------------------------------------------------------------------------------------------
// start
// ---------------------------------------------------------------------------------------------

/** Resolves at the first Ctrl-C (SIGINT) or SIGTERM, and stops listening for both. */
function untilStopped(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

const START_USAGE = `Usage: hushpay start [--config FILE] [--sip HOST:PORT] [--pbx SIP-URI] [--http HOST:PORT] [--data DIR]

Starts hushpay: the SIP B2BUA between your trunk and your PBX, masking every DTMF digit the
caller keys on the agent's audio and in the recording.

  --config FILE    a JSON config file (tenants, ports, masking); without one, the embedded
                   defaults: SIP on 127.0.0.1:5060 UDP and TCP, every call routed to --pbx
  --sip HOST:PORT  where SIP listens (overrides the config)
  --pbx SIP-URI    where calls go when the config names no tenants, e.g. sip:agents@10.0.0.5
  --http HOST:PORT where the API, the event stream and the agent page listen
                   (default 127.0.0.1:8080)
  --data DIR       where recordings and the store live (default ./data)

A mistake in the config is reported with the field it is in, and hushpay does not start.
Ctrl-C (SIGINT) or SIGTERM ends every call and stops.
`;

const start: Command = {
  summary: 'run hushpay (the SIP B2BUA with DTMF masking)',
  usage: START_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { config: { type: 'string' }, sip: { type: 'string' }, pbx: { type: 'string' }, http: { type: 'string' }, data: { type: 'string' } });
    if (values['help'] === true) return help(this, io);
    checkPositionals(positionals, []);
    const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
    const { loadConfig } = await import('./config.ts');
    const { startHushpay } = await import('./server.ts');
    const config = await loadConfig(str('config'), {
      ...(str('sip') !== undefined ? { sip: str('sip')! } : {}),
      ...(str('pbx') !== undefined ? { pbx: str('pbx')! } : {}),
      ...(str('http') !== undefined ? { http: str('http')! } : {}),
      ...(str('data') !== undefined ? { data: str('data')! } : {}),
    });
    const hushpay = await startHushpay(config);
    const tenants = config.tenants.map((t) => `${t.id} → ${t.pbx}`).join(', ');
    const lines = [
      'hushpay is running',
      `  SIP       ${hushpay.port.listening.join(', ')}`,
      `  media     ${config.media.host}, RTP ports ${config.media.portMin}-${config.media.portMax}, mask delay ${config.media.maskDelayMs} ms`,
      `  tenants   ${tenants}`,
      `  web       ${hushpay.httpUrl} (agent page), ${hushpay.httpUrl}/docs (API)`,
      `  data      ${config.dataDir}`,
    ];
    // the embedded defaults are the demo: its tenant, an agent to log in as, and a call to place
    const { DEMO_TENANT_ID } = await import('./config.ts');
    const demoTenant = str('config') === undefined ? config.tenants.find((t) => t.id === DEMO_TENANT_ID) : undefined;
    if (demoTenant) {
      const { resetDemoAgent } = await import('./tools/store.ts');
      let demoLogin: { username: string; password: string };
      try {
        demoLogin = await resetDemoAgent(hushpay.store);
      } catch (err) {
        await hushpay.close();
        throw err;
      }
      const { username, password } = demoLogin;
      const sip = `${config.sip.host}:${hushpay.port.listening[0]?.split(':').at(-1) ?? config.sip.port}`;
      lines.push(
        '',
        `Demo tenant "${demoTenant.id}": every call goes to ${demoTenant.pbx}, payments to the sandbox gateway.`,
        `Demo agent: log in at ${hushpay.httpUrl} as ${username} / ${password}  (a new password at each start)`,
        'Place a test call, in two more terminals:',
        `  npx sip-sim agent --listen ${demoTenant.pbx.replace(/^sip:[^@]*@/, '')}      (the agent's phone; it prints X-Hushpay-Call-Id)`,
        `  npx sip-sim caller --to sip:0120000000@${sip} --digits 41111111111111111230123 --dtmf inband --after-ms 20000 --hangup-after-ms 60000`,
        '(card 4111 1111 1111 1111, expiry 12/30, code 123): on the agent page take the call by its X-Hushpay-Call-Id and start a payment before the caller keys.',
        'Or let `npm run demo` do all of that by itself.',
      );
    }
    io.stdout([...lines, 'Ctrl-C stops.', ''].join('\n'));
    await untilStopped();
    io.stderr('hushpay: stopping\n');
    await hushpay.close();
    return EXIT_OK;
  },
};

// ---------------------------------------------------------------------------------------------
// sandbox-gateway
// ---------------------------------------------------------------------------------------------

const SANDBOX_USAGE = `Usage: hushpay sandbox-gateway [--listen HOST:PORT]

Runs the sandbox payment gateway as an HTTP server, for integrators: the same test cards and
answers hushpay's embedded sandbox gives (4242424242424242 approves; 4000000000009995 is
declined for insufficient funds; 4000000000003063 answers after 60 s; …). Point a tenant at it
with "payments": { "gateway": { "type": "sandbox", "url": "http://HOST:PORT" } }.

  POST /v1/{authorize|capture|sale|verify|store-card|charge-stored|void|refund}
  with a JSON body and an Idempotency-Key header; the answer is the payment result as JSON.

  --listen HOST:PORT  where to listen (default 127.0.0.1:8089)

Ctrl-C (SIGINT) or SIGTERM stops it.`;

const sandboxGateway: Command = {
  summary: 'run the sandbox payment gateway as an HTTP server (test cards, for integrators)',
  usage: SANDBOX_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { listen: { type: 'string' } });
    if (values['help'] === true) return help(this, io);
    checkPositionals(positionals, []);
    const listen = typeof values['listen'] === 'string' ? values['listen'] : '127.0.0.1:8089';
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
    if (!m || Number(m[2]) > 65535) throw new UsageError('--listen must be HOST:PORT');
    const { startSandboxServer } = await import('./payments/sandbox.ts');
    const { systemClock } = await import('./clock.ts');
    const server = await startSandboxServer({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), clock: systemClock });
    io.stdout(`sandbox gateway listening on ${server.url}\nCtrl-C stops.\n`);
    await untilStopped();
    await server.close();
    return EXIT_OK;
  },
};

// ---------------------------------------------------------------------------------------------
// audit, users, apikeys: the store
// ---------------------------------------------------------------------------------------------

const STORE_OPTIONS_USAGE = `  --data DIR       the data directory the store is in (default: the config's dataDir, else ./data)
  --config FILE    the config file whose dataDir to use`;

const AUDIT_USAGE = `Usage: hushpay audit verify [--data DIR] [--config FILE]

Checks the audit log's hash chain in the store (DIR/hushpay.db), opened read-only: every
entry's hash is recomputed and every link to the entry before it checked, so an entry
edited, removed or reordered in the file is found. Prints
  audit chain ok: N entries
or
  audit chain BROKEN at seq S: what is wrong

${STORE_OPTIONS_USAGE}

Exit status: 0 the chain is whole, 1 it is broken or the store cannot be read
(HP_ERR_STORE_MISSING: no database there), 2 usage error.
`;

type Values = Record<string, string | boolean | undefined>;

function stringOption(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function requiredOption(values: Values, name: string): string {
  const value = stringOption(values, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is needed`);
  return value;
}

/** `verify` (or `add`) and nothing else as the positional arguments. */
function checkAction(positionals: readonly string[], action: string): void {
  if (positionals[0] !== action) throw new UsageError(positionals[0] === undefined ? `missing the action (${action})` : `unknown action '${positionals[0]}' (expected ${action})`);
  checkPositionals(positionals.slice(1), []);
}

const audit: Command = {
  summary: "check the audit log's hash chain",
  usage: AUDIT_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { data: { type: 'string' }, config: { type: 'string' } });
    if (values['help'] === true) return help(this, io);
    checkAction(positionals, 'verify');
    const { storeFile, verifyAudit } = await import('./tools/store.ts');
    const { systemClock } = await import('./clock.ts');
    const result = verifyAudit(await storeFile({ data: stringOption(values, 'data'), config: stringOption(values, 'config') }), systemClock);
    if (result.ok) {
      io.stdout(`audit chain ok: ${result.entries} ${result.entries === 1 ? 'entry' : 'entries'}\n`);
      return EXIT_OK;
    }
    io.stdout(`audit chain BROKEN at seq ${result.firstBadSeq}: ${result.problem}\n`);
    return EXIT_FAILURE;
  },
};

const USERS_USAGE = `Usage: hushpay users add --username NAME --role agent|supervisor|admin [--tenant ID]
                         [--password-env VAR] [--totp] [--data DIR] [--config FILE]

Adds a user of the agent desktop and prints its id. The password is read from the
environment variable VAR, or else from stdin (the first line; not echoed on a terminal),
never from the command line. It must be at least 12 characters with letters and digits
(PCI DSS 8.3.6).

An admin always gets a TOTP second factor (PCI DSS 8.4): its secret and otpauth:// URI are
printed once, for the admin's authenticator app (show the URI as a QR code). --totp gives
an agent or a supervisor one too.

  --username NAME     the login name (unique, compared without case)
  --role ROLE         agent, supervisor or admin
  --tenant ID         the tenant the user belongs to (none: every tenant)
  --password-env VAR  the environment variable holding the password
  --totp              enrol a TOTP second factor (always for an admin)
${STORE_OPTIONS_USAGE}

The store is created if it does not exist. The change is written to the audit log.

Exit status: 0 done, 1 refused (HP_ERR_STORE_CONFLICT: the username is taken;
HP_ERR_STORE_INPUT: a password the policy refuses), 2 usage error.
`;

const users: Command = {
  summary: 'add a desktop user (admins get a TOTP second factor)',
  usage: USERS_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      username: { type: 'string' },
      role: { type: 'string' },
      tenant: { type: 'string' },
      'password-env': { type: 'string' },
      totp: { type: 'boolean' },
      data: { type: 'string' },
      config: { type: 'string' },
    });
    if (values['help'] === true) return help(this, io);
    checkAction(positionals, 'add');
    const { addUser, checkTenantId, parseRole, storeFile } = await import('./tools/store.ts');
    const username = requiredOption(values, 'username');
    const role = parseRole(stringOption(values, 'role'));
    const tenant = stringOption(values, 'tenant');
    const tenantId = tenant === undefined ? null : checkTenantId(tenant);
    const path = await storeFile({ data: stringOption(values, 'data'), config: stringOption(values, 'config') });
    const passwordEnv = stringOption(values, 'password-env');
    let password: string;
    if (passwordEnv !== undefined) {
      const value = process.env[passwordEnv];
      if (value === undefined || value === '') throw new UsageError(`--password-env: the environment variable ${passwordEnv} is not set`);
      password = value;
    } else {
      if (io.readSecret === undefined) throw new UsageError('give the password with --password-env VAR, or on stdin');
      password = await io.readSecret(`Password for ${username}: `);
      if (password === '') throw new UsageError('no password on stdin');
    }
    const { systemClock } = await import('./clock.ts');
    const added = await addUser(path, systemClock, { username, role, tenantId, password, totp: values['totp'] === true });
    const lines = [`user id: ${added.user.id}`];
    if (added.totp) lines.push(`totp secret: ${added.totp.secret}`, `otpauth uri: ${added.totp.uri}`);
    io.stdout(`${lines.join('\n')}\n`);
    if (added.totp) io.stderr('Add the TOTP secret to the user\'s authenticator app now (the URI as a QR code): it is not shown again.\n');
    return EXIT_OK;
  },
};

const APIKEYS_USAGE = `Usage: hushpay apikeys add --tenant ID --name NAME [--data DIR] [--config FILE]

Creates an API key for a tenant's systems (CRM, order system) and prints it — once: the
store keeps only its SHA-256, so it cannot be shown again. Send it as
'Authorization: Bearer hpk_…'.

  --tenant ID    the tenant the key acts for
  --name NAME    what the key is for, shown in lists (e.g. "order system")
${STORE_OPTIONS_USAGE}

The store is created if it does not exist. The change is written to the audit log.

Exit status: 0 done, 1 refused, 2 usage error.
`;

const apikeys: Command = {
  summary: "create an API key for a tenant's systems",
  usage: APIKEYS_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { tenant: { type: 'string' }, name: { type: 'string' }, data: { type: 'string' }, config: { type: 'string' } });
    if (values['help'] === true) return help(this, io);
    checkAction(positionals, 'add');
    const { addApiKey, checkTenantId, storeFile } = await import('./tools/store.ts');
    const tenantId = checkTenantId(requiredOption(values, 'tenant'));
    const name = requiredOption(values, 'name');
    const path = await storeFile({ data: stringOption(values, 'data'), config: stringOption(values, 'config') });
    const { systemClock } = await import('./clock.ts');
    const { key, record } = addApiKey(path, systemClock, { tenantId, name });
    io.stdout(`api key: ${key}\nkey id: ${record.id}\n`);
    io.stderr('Store the key now: it is not shown again.\n');
    return EXIT_OK;
  },
};

// ---------------------------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------------------------

const DEMO_USAGE = `Usage: hushpay demo [--dtmf inband|rfc4733|info] [--keep]

Places a whole payment call on this machine, by itself, and tells what happened: hushpay on
free loopback ports with the sandbox gateway, a simulated agent phone, the agent's desktop
event stream, and a simulated caller who talks, then keys a test card (fixing a typo with *),
its expiry and security code once the agent starts a payment. Ends with the result and the
digits hushpay's own detector finds in what the agent heard and in the recording: none.

  --dtmf METHOD  how the caller keys: inband (tones in the audio, default), rfc4733, info
  --keep         keep the demo's data directory (database, recording) and print where it is

Takes about 30 seconds. Exit status: 0 approved with nothing heard, 1 otherwise.
`;

const demo: Command = {
  summary: 'place a whole payment call by itself and tell what happened',
  usage: DEMO_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { dtmf: { type: 'string' }, keep: { type: 'boolean' } });
    if (values['help'] === true) return help(this, io);
    checkPositionals(positionals, []);
    const dtmf = stringOption(values, 'dtmf') ?? 'inband';
    if (dtmf !== 'inband' && dtmf !== 'rfc4733' && dtmf !== 'info') throw new UsageError('--dtmf must be inband, rfc4733 or info');
    const { runDemo } = await import('./tools/demo.ts');
    io.stdout('hushpay demo: a caller pays ¥1,200 by card during a call with an agent\n\n');
    const report = await runDemo({ say: (line) => io.stdout(`${line}\n`), dtmf, keep: values['keep'] === true });
    const ok = report.result?.['status'] === 'approved' && report.agentHeardDigits === 0 && report.recordingDigits === 0;
    io.stdout(ok ? '\nThe card was charged, and no person or recording heard a digit of it.\n' : '\nThe demo did not go as it should: see above.\n');
    return ok ? EXIT_OK : EXIT_FAILURE;
  },
};

// ---------------------------------------------------------------------------------------------
// The command table
// ---------------------------------------------------------------------------------------------

export const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ['start', start],
  ['detect', detect],
  ['scrub', scrub],
  ['sandbox-gateway', sandboxGateway],
  ['audit', audit],
  ['users', users],
  ['apikeys', apikeys],
  ['demo', demo],
]);

function topUsage(): string {
  const names = [...COMMANDS.keys()];
  const width = Math.max(...names.map((n) => n.length));
  const lines = [...COMMANDS].map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return `Usage: hushpay <command> [arguments]

Commands:
${lines.join('\n')}

Run 'hushpay <command> --help' for a command's arguments and options.
`;
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

function parseCommandArgs(args: readonly string[], options: OptionSpec): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    const plain: Record<string, string | boolean | undefined> = {};
    for (const [key, value] of Object.entries(values)) plain[key] = Array.isArray(value) ? value.at(-1) : value;
    return { values: plain, positionals };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) throw new UsageError(err instanceof Error ? err.message : String(err));
    throw err;
  }
}

/** Exactly one positional per name, or a UsageError naming what is missing or extra. */
function checkPositionals(positionals: readonly string[], names: readonly string[]): void {
  if (positionals.length < names.length) throw new UsageError(`missing ${names.slice(positionals.length).join(' and ')}`);
  if (positionals.length > names.length) throw new UsageError(`unexpected argument '${positionals[names.length]!}'`);
}

function help(command: Command, io: CliIo): number {
  io.stdout(command.usage);
  return EXIT_OK;
}

/** Runs `hushpay` with `argv` (the arguments after the program name); returns the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr(topUsage());
    return EXIT_USAGE;
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    io.stdout(topUsage());
    return EXIT_OK;
  }
  const command = COMMANDS.get(name);
  if (command === undefined) {
    io.stderr(`hushpay: ${formatFailure(describeFailure(new UsageError(`unknown command '${name}'`)))}\n${topUsage()}`);
    return EXIT_USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const failure = describeFailure(err);
    io.stderr(`hushpay ${name}: ${formatFailure(failure)}\n`);
    if (err instanceof UsageError) {
      io.stderr(`Run 'hushpay ${name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    return EXIT_FAILURE;
  }
}

/**
 * The first line of stdin. On a terminal: prompted on stderr and read in raw mode, so the
 * characters are not echoed; Ctrl-C or Ctrl-D gives up.
 */
async function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = '';
    stdin.setEncoding('utf8');
    for await (const chunk of stdin) {
      text += String(chunk);
      if (text.includes('\n')) break;
    }
    return text.split('\n')[0]!.replace(/\r$/, '');
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') return finish(() => resolve(value));
          if (ch === '\u0003' || ch === '\u0004') return finish(() => reject(new UsageError('no password given')));
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      const finish = (settle: () => void): void => {
        stdin.off('data', onData);
        settle();
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

if (import.meta.main) {
  // A closed pipe (`hushpay detect f | head -1`) is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  const io: CliIo = {
    stdout: (text) => {
      if (text !== '') process.stdout.write(text);
    },
    stderr: (text) => {
      process.stderr.write(text);
    },
    stderrIsTTY: process.stderr.isTTY === true,
    // a pseudo-terminal may report 0 columns; the reporter then assumes 80
    stderrColumns: process.stderr.columns > 0 ? process.stderr.columns : undefined,
    readSecret,
  };
  process.exitCode = await runCli(process.argv.slice(2), io);
}
