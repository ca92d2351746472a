// `hushpay audit verify`, `hushpay users add` and `hushpay apikeys add` as an operator runs
// them: a real child process on a real store file in a temp dir.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FakeClock, systemClock } from '../../src/clock.ts';
import { Store } from '../../src/store/index.ts';
import { totpCode } from '../../src/store/totp.ts';
import { type ProcessResult, run } from '../support/hushpay.ts';
import { tempDir, track } from './support.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const PASSWORD = 'correct-horse-42-battery';

type CliRun = ProcessResult;

function hushpay(args: readonly string[], options: { cwd?: string; env?: Record<string, string>; stdin?: string } = {}): Promise<CliRun> {
  return run(process.execPath, [CLI, ...args], { ...options, stdin: options.stdin ?? '' });
}

function openStore(dataDir: string): Store {
  return track(Store.open(join(dataDir, Store.DEFAULT_FILE), { clock: new FakeClock() }));
}

function field(stdout: string, name: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(`${name}: `));
  if (line === undefined) throw new Error(`no '${name}:' line in ${JSON.stringify(stdout)}`);
  return line.slice(name.length + 2);
}

describe('hushpay users add', () => {
  it('adds an admin with the password from an environment variable, and prints a TOTP secret and URI once', async () => {
    const data = join(tempDir(), 'data');

    const run = await hushpay(['users', 'add', '--username', 'Yamada', '--role', 'admin', '--password-env', 'HP_TEST_PW', '--data', data], { env: { HP_TEST_PW: PASSWORD } });

    expect(run.code).toBe(0);
    const id = field(run.stdout, 'user id');
    const secret = field(run.stdout, 'totp secret');
    expect(id).toMatch(/^usr_/);
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(field(run.stdout, 'otpauth uri')).toBe(`otpauth://totp/hushpay:Yamada?secret=${secret}&issuer=hushpay&algorithm=SHA1&digits=6&period=30`);
    expect(run.stderr).toContain('not shown again');
    expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    const store = openStore(data);
    expect(store.users.get(id)).toMatchObject({ username: 'Yamada', role: 'admin', tenantId: null, totpEnabled: true });
    expect(await store.users.verifyPassword('yamada', PASSWORD)).toBeDefined();
    const now = systemClock.wallMs();
    expect(store.users.acceptTotp(id, totpCode(secret, now), now)).toBe(true);
    expect(store.audit.list()).toEqual([
      expect.objectContaining({ seq: 1, actorType: 'system', actorId: null, action: 'user.create', resource: `user:${id}`, outcome: 'success', origin: 'cli', details: { username: 'Yamada', role: 'admin', totp: true } }),
    ]);
  });

  it('reads the password from stdin when no variable is named; an agent gets no TOTP unless asked', async () => {
    const data = join(tempDir(), 'data');

    const agent = await hushpay(['users', 'add', '--username', 'sato', '--role', 'agent', '--tenant', 'shop', '--data', data], { stdin: `${PASSWORD}\nignored\n` });
    const supervisor = await hushpay(['users', 'add', '--username', 'kato', '--role', 'supervisor', '--tenant', 'shop', '--totp', '--data', data], { stdin: `${PASSWORD}\r\n` });

    expect(agent.code).toBe(0);
    expect(agent.stdout).toMatch(/^user id: usr_[A-Za-z0-9_-]{22}\n$/);
    expect(supervisor.code).toBe(0);
    expect(supervisor.stdout).toContain('totp secret: ');
    const store = openStore(data);
    expect(await store.users.verifyPassword('sato', PASSWORD)).toMatchObject({ tenantId: 'shop', role: 'agent', totpEnabled: false });
    expect(await store.users.verifyPassword('kato', PASSWORD)).toMatchObject({ role: 'supervisor', totpEnabled: true });
  });

  it('refuses a weak password (PCI DSS 8.3.6), creating no user', async () => {
    const data = join(tempDir(), 'data');

    const run = await hushpay(['users', 'add', '--username', 'sato', '--role', 'agent', '--data', data], { stdin: 'Sh0rtPw\n' });

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('HP_ERR_STORE_INPUT: password: must be at least 12 characters');
    expect(run.stderr).not.toContain('Sh0rtPw');
    expect(existsSync(join(data, Store.DEFAULT_FILE))).toBe(false);
  });

  it('refuses a taken username (in any case) and audits the refusal', async () => {
    const data = join(tempDir(), 'data');
    await hushpay(['users', 'add', '--username', 'sato', '--role', 'agent', '--data', data], { stdin: `${PASSWORD}\n` });

    const run = await hushpay(['users', 'add', '--username', 'SATO', '--role', 'admin', '--data', data], { stdin: `${PASSWORD}\n` });

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('HP_ERR_STORE_CONFLICT: username: already taken');
    const store = openStore(data);
    expect(store.users.list()).toHaveLength(1);
    expect(store.audit.list({ limit: 1 })[0]).toMatchObject({ seq: 2, action: 'user.create', outcome: 'failure', resource: null, details: { username: 'SATO', role: 'admin', code: 'HP_ERR_STORE_CONFLICT' } });
  });

  it.each([
    { args: ['users', 'add', '--username', 'x', '--role', 'agent', '--password', PASSWORD], message: "Unknown option '--password'" },
    { args: ['users', 'add', '--role', 'agent'], message: '--username is needed' },
    { args: ['users', 'add', '--username', 'x', '--role', 'boss'], message: '--role must be one of agent, supervisor, admin' },
    { args: ['users', 'add', '--username', 'x', '--role', 'agent', '--tenant', 'Shop A'], message: '--tenant must be a tenant id' },
    { args: ['users', 'add', '--username', 'x', '--role', 'agent', '--password-env', 'HP_TEST_UNSET'], message: '--password-env: the environment variable HP_TEST_UNSET is not set' },
    { args: ['users', 'add', '--username', 'x', '--role', 'agent'], message: 'no password on stdin' },
    { args: ['users', 'remove'], message: "unknown action 'remove' (expected add)" },
    { args: ['users'], message: 'missing the action (add)' },
  ])('usage error: $message', async ({ args, message }) => {
    const data = join(tempDir(), 'data');

    const run = await hushpay([...args, '--data', data]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`HP_ERR_USAGE: ${message}`);
    expect(run.stderr).not.toContain(PASSWORD);
    expect(existsSync(data)).toBe(false);
  });
});

describe('hushpay apikeys add', () => {
  it('prints the key once; the store authenticates it and audits its creation', async () => {
    const data = join(tempDir(), 'data');

    const run = await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'order system', '--data', data]);

    expect(run.code).toBe(0);
    const key = field(run.stdout, 'api key');
    const id = field(run.stdout, 'key id');
    expect(key).toMatch(/^hpk_[A-Za-z0-9_-]{43}$/);
    expect(run.stderr).toContain('not shown again');
    const store = openStore(data);
    expect(store.apiKeys.authenticate(key)).toMatchObject({ id, tenantId: 'shop', name: 'order system' });
    const [entry] = store.audit.list();
    expect(entry).toMatchObject({ actorType: 'system', action: 'apiKey.create', resource: `apiKey:${id}`, origin: 'cli', outcome: 'success', tenantId: 'shop', details: { name: 'order system', prefix: key.slice(0, 8) } });
    expect(JSON.stringify(entry)).not.toContain(key);
  });

  it.each([
    { args: ['apikeys', 'add', '--name', 'x'], message: '--tenant is needed' },
    { args: ['apikeys', 'add', '--tenant', 'shop'], message: '--name is needed' },
    { args: ['apikeys', 'add', '--tenant', '../etc', '--name', 'x'], message: '--tenant must be a tenant id' },
  ])('usage error: $message', async ({ args, message }) => {
    const run = await hushpay([...args, '--data', join(tempDir(), 'data')]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`HP_ERR_USAGE: ${message}`);
  });
});

describe('hushpay audit verify', () => {
  it('says the chain is whole, counting the entries the other commands wrote', async () => {
    const data = join(tempDir(), 'data');
    await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'a', '--data', data]);
    await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'b', '--data', data]);
    await hushpay(['users', 'add', '--username', 'sato', '--role', 'agent', '--data', data], { stdin: `${PASSWORD}\n` });

    const run = await hushpay(['audit', 'verify', '--data', data]);

    expect(run).toEqual({ code: 0, stdout: 'audit chain ok: 3 entries\n', stderr: '' });
  });

  it('names the first bad entry of a tampered chain and exits 1', async () => {
    const data = join(tempDir(), 'data');
    for (const name of ['a', 'b', 'c']) await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', name, '--data', data]);
    const raw = new DatabaseSync(join(data, Store.DEFAULT_FILE));
    raw.exec("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET tenant_id = 'other' WHERE seq = 2");
    raw.close();

    const run = await hushpay(['audit', 'verify', '--data', data]);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('audit chain BROKEN at seq 2: the hash does not match the entry: it was changed after it was written\n');
  });

  it('exits 1 with HP_ERR_STORE_MISSING where there is no database, creating nothing', async () => {
    const data = join(tempDir(), 'data');

    const run = await hushpay(['audit', 'verify', '--data', data]);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`hushpay audit: HP_ERR_STORE_MISSING: no hushpay database at ${join(data, Store.DEFAULT_FILE)}\n`);
    expect(existsSync(data)).toBe(false);
  });

  it("finds the store under the config file's dataDir, or ./data by default", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hushpay.json'), JSON.stringify({ dataDir: join(dir, 'var') }));
    await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'a', '--config', join(dir, 'hushpay.json')]);
    await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'b'], { cwd: dir });
    await hushpay(['apikeys', 'add', '--tenant', 'shop', '--name', 'c'], { cwd: dir });

    const fromConfig = await hushpay(['audit', 'verify', '--config', join(dir, 'hushpay.json')]);
    const byDefault = await hushpay(['audit', 'verify'], { cwd: dir });

    expect(fromConfig.stdout).toBe('audit chain ok: 1 entry\n');
    expect(byDefault.stdout).toBe('audit chain ok: 2 entries\n');
    expect(existsSync(join(dir, 'data', Store.DEFAULT_FILE))).toBe(true);
  });

  it('prints its usage for --help, and refuses an unknown action', async () => {
    const [helpRun, bad] = await Promise.all([hushpay(['audit', '--help']), hushpay(['audit', 'repair'])]);

    expect(helpRun.code).toBe(0);
    expect(helpRun.stdout).toContain('Usage: hushpay audit verify [--data DIR] [--config FILE]');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("HP_ERR_USAGE: unknown action 'repair' (expected verify)");
  });
});
