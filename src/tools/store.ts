/**
 * The store's command-line tools: `hushpay audit verify`, `hushpay users add`,
 * `hushpay apikeys add`. Each opens the store file under the data directory, does one thing,
 * and closes it; the CLI (src/cli.ts) prints what they return.
 *
 * The data directory is found as `hushpay start` finds it: `--data`, else the config file's
 * `dataDir`, else `./data` (config.ts DEFAULTS).
 *
 * What the tools change they audit (PCI DSS 10.2.1.2 administrative actions, 10.2.1.5 credential
 * creation), as actor `system` from origin `cli`; a refusal is audited too, as a failure.
 */

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { DEFAULTS, DEMO_TENANT_ID } from '../config.ts';
import { ConfigError, HushpayError, UsageError } from '../errors.ts';
import { type ApiKey, type AuditVerification, ROLES, type Role, Store, StoreInputError, type User, generateTotpSecret, otpauthUri } from '../store/index.ts';
import { passwordPolicyProblem } from '../store/password.ts';

export const CLI_ORIGIN = 'cli';
/** Tenant ids as the config takes them (config.ts). */
const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The store file: under `--data`, else the config file's `dataDir`, else `./data`. */
export async function storeFile(options: { readonly data?: string | undefined; readonly config?: string | undefined }): Promise<string> {
  if (options.data !== undefined) return join(options.data, Store.DEFAULT_FILE);
  if (options.config === undefined) return join(DEFAULTS.dataDir, Store.DEFAULT_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(options.config, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError('config', code === undefined ? `${options.config} is not JSON` : `cannot read ${options.config}: ${code}`);
  }
  const dataDir = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>)['dataDir'] : undefined;
  if (dataDir !== undefined && typeof dataDir !== 'string') throw new ConfigError('dataDir', 'must be a string');
  return join(dataDir ?? DEFAULTS.dataDir, Store.DEFAULT_FILE);
}

/** Walks the audit chain of the store at `path`, opened read-only (nothing is created or migrated). */
export function verifyAudit(path: string, clock: Clock): AuditVerification {
  const store = Store.open(path, { clock, readOnly: true });
  try {
    return store.audit.verify();
  } finally {
    store.close();
  }
}

export function checkTenantId(tenantId: string): string {
  if (!TENANT_ID_PATTERN.test(tenantId)) throw new UsageError('--tenant must be a tenant id: lower-case letters, digits, - or _ (at most 63)');
  return tenantId;
}

export function parseRole(value: string | undefined): Role {
  const role = ROLES.find((r) => r === value);
  if (role === undefined) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  return role;
}

export interface AddUserInput {
  readonly username: string;
  readonly role: Role;
  readonly tenantId: string | null;
  readonly password: string;
  /** Enrol a TOTP second factor; admins always get one (PCI DSS 8.4). */
  readonly totp: boolean;
}

export interface AddedUser {
  readonly user: User;
  /** The TOTP secret and its otpauth:// URI, shown once for the authenticator app. */
  readonly totp: { readonly secret: string; readonly uri: string } | undefined;
}

/** Creates a desktop user (with a TOTP secret for admins) and audits it. */
export async function addUser(path: string, clock: Clock, input: AddUserInput): Promise<AddedUser> {
  const problem = passwordPolicyProblem(input.password);
  if (problem !== undefined) throw new StoreInputError('password', problem);
  const store = Store.open(path, { clock });
  try {
    const audit = (outcome: 'success' | 'failure', resource: string | null, details: object): void => {
      store.audit.append({ actorType: 'system', actorId: null, tenantId: input.tenantId, action: 'user.create', resource, outcome, origin: CLI_ORIGIN, details });
    };
    let user: User;
    try {
      user = await store.users.create({ tenantId: input.tenantId, username: input.username, role: input.role, password: input.password });
    } catch (err) {
      if (err instanceof HushpayError) audit('failure', null, { username: input.username.trim().slice(0, 128), role: input.role, code: err.code });
      throw err;
    }
    let totp: AddedUser['totp'];
    if (input.totp || input.role === 'admin') {
      const secret = generateTotpSecret();
      store.users.setTotpSecret(user.id, secret);
      user = store.users.get(user.id)!;
      totp = { secret, uri: otpauthUri({ secret, account: user.username }) };
    }
    audit('success', `user:${user.id}`, { username: user.username, role: user.role, totp: user.totpEnabled });
    return { user, totp };
  } finally {
    store.close();
  }
}

/** Creates an API key for the tenant and audits it; `key` is the only time the secret is seen. */
export function addApiKey(path: string, clock: Clock, input: { readonly tenantId: string; readonly name: string }): { key: string; record: ApiKey } {
  const store = Store.open(path, { clock });
  try {
    const created = store.apiKeys.create(input);
    store.audit.append({
      actorType: 'system',
      actorId: null,
      tenantId: input.tenantId,
      action: 'apiKey.create',
      resource: `apiKey:${created.record.id}`,
      outcome: 'success',
      origin: CLI_ORIGIN,
      details: { name: created.record.name, prefix: created.record.prefix },
    });
    return created;
  } finally {
    store.close();
  }
}

export const DEMO_AGENT_USERNAME = 'demo-agent';

/**
 * The demo agent of the embedded defaults (`hushpay start` with no config): created in the
 * demo tenant if missing, and given a new random password at every start, printed once — never
 * a fixed default password (PCI DSS 2.2.2). The change is audited like any other.
 */
export async function resetDemoAgent(store: Store): Promise<{ username: string; password: string }> {
  // 18 random bytes as base64url: 24 characters; a letter and a digit are added for the policy
  const password = `${randomBytes(18).toString('base64url')}a7`;
  const existing = store.users.byUsername(DEMO_AGENT_USERNAME);
  // only the demo's own agent is reset: never an account of that name made for real use
  if (existing && (existing.tenantId !== DEMO_TENANT_ID || existing.role !== 'agent')) throw new StoreInputError('username', `${DEMO_AGENT_USERNAME} exists and is not the demo tenant's agent; the demo login was not changed`);
  const user = existing ? await store.users.setPassword(existing.id, password) : await store.users.create({ tenantId: DEMO_TENANT_ID, username: DEMO_AGENT_USERNAME, role: 'agent', password });
  store.audit.append({ actorType: 'system', actorId: null, tenantId: DEMO_TENANT_ID, action: existing ? 'user.password' : 'user.create', resource: `user:${user.id}`, outcome: 'success', origin: CLI_ORIGIN, details: { username: DEMO_AGENT_USERNAME, demo: true } });
  return { username: DEMO_AGENT_USERNAME, password };
}
