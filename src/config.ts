/**
 * hushpay's configuration: one JSON file (or none — embedded defaults), validated at start
 * with a message naming the field for each mistake. Secrets never sit in the file: a
 * credential names the environment variable that holds it.
 */

import { readFile } from 'node:fs/promises';
import { ConfigError } from './errors.ts';
import { CAPTURE_FIELDS, type CaptureField, type MethodKind } from '../flows/capture.machine.ts';
import { MASK_MODES, type MaskMode } from './media/dtmf/engine.ts';
import { CARD_BRANDS, type CardBrand } from './payments/card.ts';
import { parseUri } from './sip/message.ts';

export type MaskPolicy = 'always' | 'secure';

/** Where a tenant's payments go. Secrets are read from the environment variables named. */
export type GatewayConfig =
  | { readonly type: 'sandbox'; readonly url: string | undefined }
  | { readonly type: 'gmo-pg'; readonly baseUrl: string; readonly shopId: string; readonly shopPassEnv: string; readonly siteId: string | undefined; readonly sitePassEnv: string | undefined }
  | { readonly type: 'stripe'; readonly apiKeyEnv: string; readonly host: string | undefined; readonly port: number | undefined; readonly protocol: 'http' | 'https' };

export interface TenantPayments {
  readonly gateway: GatewayConfig;
  readonly acceptedBrands: readonly CardBrand[];
  /** The card fields asked, in order; the card number and expiry always. */
  readonly fields: readonly CaptureField[];
  readonly language: 'ja' | 'en';
  readonly prompts: 'speech' | 'tones';
  /** The tenant's own recordings, replacing default clips of the same name. */
  readonly promptDir: string | undefined;
  readonly maxAttempts: number;
  readonly firstDigitMs: number;
  readonly betweenDigitsMs: number;
  readonly wholeFieldMs: number;
  /** Who chooses 一括/分割/ボーナス/リボ: the agent, the caller (keyed), or nobody (一括). */
  readonly methodChooser: 'agent' | 'caller' | 'none';
  readonly allowedMethods: readonly MethodKind[];
  readonly installmentCounts: readonly number[];
  readonly confirmAmount: boolean;
  /** Send to the gateway as soon as the caller has keyed everything (else the agent submits). */
  readonly autoSubmit: boolean;
  readonly resultHoldMs: number;
  readonly gatewayTimeoutMs: number;
  readonly cardTesting: { readonly perCall: number; readonly perCallerPerHour: number };
}

export interface TenantConfig {
  readonly id: string;
  readonly name: string;
  /** Called numbers (To / Request-URI user part) routed here: exact, or a prefix ending in `*`. */
  readonly numbers: readonly string[];
  /** Source addresses routed here: an IPv4 address or CIDR block. */
  readonly sources: readonly string[];
  /** Where the agent leg goes (the PBX), a sip: URI. */
  readonly pbx: string;
  /** Digest credentials for the PBX, the password read from the environment variable named. */
  readonly pbxCredentials: { readonly username: string; readonly passwordEnv: string } | undefined;
  readonly recording: boolean;
  readonly masking: { readonly agent: MaskMode; readonly recording: MaskMode };
  readonly maskPolicy: MaskPolicy;
  readonly payments: TenantPayments;
  /** Where the tenant's events are posted (Standard Webhooks), if anywhere. */
  readonly webhooks: TenantWebhooks | undefined;
}

export interface TenantWebhooks {
  readonly url: string;
  /** The environment variable holding the signing secret (whsec_…). */
  readonly secretEnv: string;
  /** Event types sent; default every type but capture.progress. */
  readonly events: readonly string[] | undefined;
}

/** Every event type the desk publishes. */
export const EVENT_TYPES = [
  'call.started',
  'call.assigned',
  'call.ended',
  'payment.started',
  'payment.refused',
  'capture.progress',
  'capture.error',
  'payment.ready',
  'payment.authorizing',
  'payment.completed',
  'payment.failed',
  'payment.cancelled',
] as const;

export interface HushpayConfig {
  readonly sip: {
    readonly engine: 'embedded' | 'drachtio';
    readonly host: string;
    readonly port: number;
    readonly udp: boolean;
    readonly tcp: boolean;
    /** The address peers should reach us at (Contact, Via), if not `host`. */
    readonly advertise: string | undefined;
    readonly drachtio: { readonly host: string; readonly port: number; readonly secretEnv: string } | undefined;
    readonly timers: { readonly T1: number; readonly T2: number; readonly T4: number };
    /** SIP over TLS beside UDP and TCP (embedded engine): files read at start by src/tls.ts. */
    readonly tls: SipTlsConfig | undefined;
  };
  readonly media: {
    readonly host: string;
    readonly advertise: string | undefined;
    readonly portMin: number;
    readonly portMax: number;
    /** A call with no RTP from the caller for this long ends (not while on hold). */
    readonly noRtpTimeoutMs: number;
    readonly maskDelayMs: number;
  };
  /**
   * Calls at once; beyond it new INVITEs get 503. One hushpay process relays and masks on one
   * core: 350–400 calls kept p99 added jitter ≤ 5 ms in the bench (README "Figures").
   */
  readonly calls: { readonly max: number };
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** HTTPS instead of HTTP: files read at start by src/tls.ts `readTlsFiles(tls, 'http.tls')`. */
    readonly tls: HttpTlsConfig | undefined;
    /** Origins (a CRM, `https://crm.example.com`) that may frame the agent page and talk to it. */
    readonly frameAncestors: readonly string[];
  };
  readonly dataDir: string;
  readonly tenants: readonly TenantConfig[];
}

/** `sip.tls`: the TLS listener's port and the PEM files (paths; src/tls.ts reads and checks them). */
export interface SipTlsConfig {
  /** RFC 3261 §19.1.2: 5061 by default. */
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  /** CAs a peer's certificate must chain to, on connections hushpay opens; default Node's and the system's. */
  readonly caFile: string | undefined;
}

/** `http.tls`: the PEM files of the API and agent page's certificate and key. */
export interface HttpTlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface StartOptions {
  readonly sip?: string;
  readonly pbx?: string;
  readonly http?: string;
  readonly data?: string;
}

/** The tenant of the embedded defaults (a config with no tenants), and where its calls go. */
export const DEMO_TENANT_ID = 'demo';
export const DEMO_PBX = 'sip:agents@127.0.0.1:5070';

export const DEFAULTS = {
  sip: { engine: 'embedded', host: '127.0.0.1', port: 5060, udp: true, tcp: true, timers: { T1: 500, T2: 4000, T4: 5000 }, tlsPort: 5061 },
  media: { host: '127.0.0.1', portMin: 20000, portMax: 29999, noRtpTimeoutMs: 60_000, maskDelayMs: 20 },
  calls: { max: 300 },
  http: { host: '127.0.0.1', port: 8080 },
  dataDir: './data',
  tenant: { recording: true, masking: { agent: 'flat', recording: 'silence' }, maskPolicy: 'always' },
  payments: {
    gateway: { type: 'sandbox', url: undefined },
    acceptedBrands: [...CARD_BRANDS],
    fields: ['payment-card-number', 'expiration-date', 'security-code'],
    language: 'ja',
    prompts: 'speech',
    promptDir: undefined,
    maxAttempts: 3,
    firstDigitMs: 10_000,
    betweenDigitsMs: 5_000,
    wholeFieldMs: 60_000,
    methodChooser: 'agent',
    allowedMethods: ['lump', 'installments', 'bonus-lump', 'revolving'],
    installmentCounts: [3, 5, 6, 10, 12, 15, 18, 20, 24],
    confirmAmount: false,
    autoSubmit: false,
    resultHoldMs: 4_000,
    gatewayTimeoutMs: 30_000,
    cardTesting: { perCall: 3, perCallerPerHour: 5 },
  } satisfies TenantPayments,
} as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Reads the config file (if any) and the command line over it; throws ConfigError. */
export async function loadConfig(file: string | undefined, options: StartOptions = {}): Promise<HushpayConfig> {
  let raw: Json = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError('config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      raw = JSON.parse(text) as Json;
    } catch (err) {
      throw new ConfigError('config', `${file} is not JSON: ${(err as Error).message}`);
    }
  }
  return validateConfig(raw, options);
}

class Reader {
  readonly path: string;
  readonly value: Json | undefined;
  constructor(path: string, value: Json | undefined) {
    this.path = path;
    this.value = value;
  }
  object(): Reader {
    if (this.value !== undefined && (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value))) throw new ConfigError(this.path, 'must be an object');
    return this;
  }
  field(name: string): Reader {
    const obj = this.value;
    const v = obj && typeof obj === 'object' && !Array.isArray(obj) ? obj[name] : undefined;
    return new Reader(this.path ? `${this.path}.${name}` : name, v);
  }
  string(fallback?: string): string {
    if (this.value === undefined && fallback !== undefined) return fallback;
    if (typeof this.value !== 'string' || this.value.length === 0) throw new ConfigError(this.path, 'must be a non-empty string');
    return this.value;
  }
  optionalString(): string | undefined {
    return this.value === undefined ? undefined : this.string();
  }
  integer(fallback: number, min: number, max: number): number {
    const v = this.value === undefined ? fallback : this.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(this.path, `must be an integer from ${min} to ${max}`);
    return v;
  }
  boolean(fallback: boolean): boolean {
    const v = this.value === undefined ? fallback : this.value;
    if (typeof v !== 'boolean') throw new ConfigError(this.path, 'must be true or false');
    return v;
  }
  oneOf<T extends string>(choices: readonly T[], fallback: T): T {
    const v = this.value === undefined ? fallback : this.value;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) throw new ConfigError(this.path, `must be one of ${choices.join(', ')}`);
    return v as T;
  }
  array(): Reader[] {
    if (this.value === undefined) return [];
    if (!Array.isArray(this.value)) throw new ConfigError(this.path, 'must be an array');
    return this.value.map((v, i) => new Reader(`${this.path}[${i}]`, v));
  }
  /** Fails on keys the schema does not know (a typo would otherwise be silently ignored). */
  only(keys: readonly string[]): this {
    const obj = this.value;
    if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
      for (const k of Object.keys(obj)) if (!keys.includes(k)) throw new ConfigError(this.path ? `${this.path}.${k}` : k, `is not a known setting (known: ${keys.join(', ')})`);
    }
    return this;
  }
}

function hostPort(text: string, field: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) throw new ConfigError(field, 'must be HOST:PORT');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * `sip.tls`, if present. Its port must differ from `sip.port` when TCP listens there (`tcpPort`);
 * drachtio-server does its own TLS, so the drachtio engine refuses it rather than ignore it.
 */
function readSipTls(r: Reader, engine: 'embedded' | 'drachtio', tcpPort: number | undefined): SipTlsConfig | undefined {
  if (r.value === undefined) return undefined;
  r.object().only(['port', 'certFile', 'keyFile', 'caFile']);
  if (engine !== 'embedded') throw new ConfigError(r.path, 'is for the embedded engine; with drachtio, TLS is drachtio-server\'s own setting');
  const port = r.field('port').integer(DEFAULTS.sip.tlsPort, 0, 65535);
  if (port !== 0 && port === tcpPort) throw new ConfigError(r.field('port').path, `must differ from sip.port (${port}), where SIP over TCP listens`);
  return { port, certFile: r.field('certFile').string(), keyFile: r.field('keyFile').string(), caFile: r.field('caFile').optionalString() };
}

function sipUri(text: string, field: string): string {
  try {
    const uri = parseUri(text);
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') throw new Error('scheme');
  } catch {
    throw new ConfigError(field, 'must be a sip: URI, e.g. sip:agents@10.0.0.5:5060');
  }
  return text;
}

const CIDR = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/;

/** A list of choices from a fixed set, no repeats; absent: the fallback. */
function choices<T extends string>(r: Reader, allowed: readonly T[], fallback: readonly T[]): T[] {
  if (r.value === undefined) return [...fallback];
  const out = r.array().map((x) => x.oneOf(allowed, allowed[0]!));
  if (out.length === 0) throw new ConfigError(r.path, 'must not be empty');
  if (new Set(out).size !== out.length) throw new ConfigError(r.path, 'names a choice twice');
  return out;
}

function readGateway(g: Reader): GatewayConfig {
  if (g.value === undefined) return DEFAULTS.payments.gateway;
  const type = g.object().field('type').oneOf(['sandbox', 'gmo-pg', 'stripe'] as const, 'sandbox');
  const url = (r: Reader): string => {
    const text = r.string();
    if (!/^https?:\/\/[^\s/]+/.test(text)) throw new ConfigError(r.path, 'must be an http:// or https:// URL');
    return text;
  };
  if (type === 'sandbox') {
    g.only(['type', 'url']);
    return { type, url: g.field('url').value === undefined ? undefined : url(g.field('url')) };
  }
  if (type === 'gmo-pg') {
    g.only(['type', 'baseUrl', 'shopId', 'shopPassEnv', 'siteId', 'sitePassEnv']);
    return { type, baseUrl: url(g.field('baseUrl')), shopId: g.field('shopId').string(), shopPassEnv: g.field('shopPassEnv').string(), siteId: g.field('siteId').optionalString(), sitePassEnv: g.field('sitePassEnv').optionalString() };
  }
  g.only(['type', 'apiKeyEnv', 'host', 'port', 'protocol']);
  const port = g.field('port').value === undefined ? undefined : g.field('port').integer(443, 1, 65535);
  return { type, apiKeyEnv: g.field('apiKeyEnv').string(), host: g.field('host').optionalString(), port, protocol: g.field('protocol').oneOf(['http', 'https'] as const, 'https') };
}

function readWebhooks(w: Reader): TenantWebhooks | undefined {
  if (w.value === undefined) return undefined;
  w.object().only(['url', 'secretEnv', 'events']);
  const url = w.field('url').string();
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new ConfigError(w.field('url').path, 'must be an http:// or https:// URL');
  const events = w.field('events').value === undefined ? undefined : choices(w.field('events'), EVENT_TYPES, EVENT_TYPES);
  return { url, secretEnv: w.field('secretEnv').string(), events };
}

function readPayments(p: Reader): TenantPayments {
  const d = DEFAULTS.payments;
  if (p.value === undefined) return d;
  p.object().only(['gateway', 'acceptedBrands', 'fields', 'language', 'prompts', 'promptDir', 'maxAttempts', 'firstDigitMs', 'betweenDigitsMs', 'wholeFieldMs', 'methodChooser', 'allowedMethods', 'installmentCounts', 'confirmAmount', 'autoSubmit', 'resultHoldMs', 'gatewayTimeoutMs', 'cardTesting']);
  const fields = choices(p.field('fields'), CAPTURE_FIELDS, d.fields);
  if (fields[0] !== 'payment-card-number' || !fields.includes('expiration-date')) throw new ConfigError(p.field('fields').path, 'must start with payment-card-number and include expiration-date');
  const counts = p.field('installmentCounts');
  const installmentCounts = counts.value === undefined ? [...d.installmentCounts] : counts.array().map((c) => c.integer(0, 2, 99));
  const cardTesting = p.field('cardTesting').object().only(['perCall', 'perCallerPerHour']);
  return {
    gateway: readGateway(p.field('gateway')),
    acceptedBrands: choices(p.field('acceptedBrands'), CARD_BRANDS, d.acceptedBrands),
    fields,
    language: p.field('language').oneOf(['ja', 'en'] as const, d.language),
    prompts: p.field('prompts').oneOf(['speech', 'tones'] as const, d.prompts),
    promptDir: p.field('promptDir').optionalString(),
    maxAttempts: p.field('maxAttempts').integer(d.maxAttempts, 1, 10),
    firstDigitMs: p.field('firstDigitMs').integer(d.firstDigitMs, 1000, 120_000),
    betweenDigitsMs: p.field('betweenDigitsMs').integer(d.betweenDigitsMs, 1000, 60_000),
    wholeFieldMs: p.field('wholeFieldMs').integer(d.wholeFieldMs, 5000, 600_000),
    methodChooser: p.field('methodChooser').oneOf(['agent', 'caller', 'none'] as const, d.methodChooser),
    allowedMethods: choices(p.field('allowedMethods'), ['lump', 'installments', 'bonus-lump', 'revolving'] as const, d.allowedMethods),
    installmentCounts,
    confirmAmount: p.field('confirmAmount').boolean(d.confirmAmount),
    autoSubmit: p.field('autoSubmit').boolean(d.autoSubmit),
    resultHoldMs: p.field('resultHoldMs').integer(d.resultHoldMs, 0, 60_000),
    gatewayTimeoutMs: p.field('gatewayTimeoutMs').integer(d.gatewayTimeoutMs, 1000, 120_000),
    cardTesting: { perCall: cardTesting.field('perCall').integer(d.cardTesting.perCall, 1, 100), perCallerPerHour: cardTesting.field('perCallerPerHour').integer(d.cardTesting.perCallerPerHour, 1, 1000) },
  };
}

export function validateConfig(raw: Json, options: StartOptions = {}): HushpayConfig {
  const root = new Reader('', raw).object().only(['sip', 'media', 'calls', 'http', 'dataDir', 'tenants']);
  const sip = root.field('sip').object().only(['engine', 'host', 'port', 'udp', 'tcp', 'advertise', 'drachtio', 'timers', 'tls']);
  const cliSip = options.sip !== undefined ? hostPort(options.sip, '--sip') : undefined;
  const engine = sip.field('engine').oneOf(['embedded', 'drachtio'] as const, DEFAULTS.sip.engine);
  const drachtioReader = sip.field('drachtio').object().only(['host', 'port', 'secretEnv']);
  const drachtio =
    engine === 'drachtio'
      ? {
          host: drachtioReader.field('host').string(),
          port: drachtioReader.field('port').integer(9022, 1, 65535),
          secretEnv: drachtioReader.field('secretEnv').string('DRACHTIO_SECRET'),
        }
      : undefined;
  const timers = sip.field('timers').object().only(['T1', 'T2', 'T4']);
  const media = root.field('media').object().only(['host', 'advertise', 'portMin', 'portMax', 'noRtpTimeoutMs', 'maskDelayMs']);
  const portMin = media.field('portMin').integer(DEFAULTS.media.portMin, 1024, 65534);
  const portMax = media.field('portMax').integer(DEFAULTS.media.portMax, 1025, 65535);
  if (portMax - portMin < 3) throw new ConfigError('media.portMax', 'must leave room for at least two ports above media.portMin');
  const http = root.field('http');
  const cliHttp = options.http !== undefined ? hostPort(options.http, '--http') : undefined;
  const httpReader = http.object().only(['host', 'port', 'tls', 'frameAncestors']);
  const frameAncestors = httpReader.field('frameAncestors').value === undefined
    ? []
    : httpReader.field('frameAncestors').array().map((o) => {
        const text = o.string();
        // an exact origin: the page posts messages to it by name, never to '*'
        let origin: string | undefined;
        try {
          origin = new URL(text).origin;
        } catch {
          origin = undefined;
        }
        if (origin !== text || !/^https?:/.test(text)) throw new ConfigError(o.path, 'must be an origin such as https://crm.example.com (scheme, host and port; no path)');
        return text;
      });
  const httpTls = httpReader.field('tls').object().only(['certFile', 'keyFile']);

  const tenants = root.field('tenants').array().map((t, i): TenantConfig => {
    t.object().only(['id', 'name', 'numbers', 'sources', 'pbx', 'pbxCredentials', 'recording', 'masking', 'maskPolicy', 'payments', 'webhooks']);
    const id = t.field('id').string();
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(id)) throw new ConfigError(`tenants[${i}].id`, 'must be lower-case letters, digits, - or _ (at most 63)');
    const numbers = t.field('numbers').array().map((n) => {
      const s = n.string();
      if (s !== '*' && !/^\+?[0-9A-Za-z_.-]+\*?$/.test(s)) throw new ConfigError(n.path, 'must be a number, a prefix ending in *, or * for every call');
      return s;
    });
    const sources = t.field('sources').array().map((n) => {
      const s = n.string();
      const m = CIDR.exec(s);
      if (!m || m[1]!.split('.').some((o) => Number(o) > 255) || (m[2] !== undefined && Number(m[2]) > 32)) throw new ConfigError(n.path, 'must be an IPv4 address or CIDR block');
      return s;
    });
    const credentials = t.field('pbxCredentials').object().only(['username', 'passwordEnv']);
    const masking = t.field('masking').object().only(['agent', 'recording']);
    return {
      id,
      name: t.field('name').string(id),
      numbers,
      sources,
      pbx: sipUri(t.field('pbx').string(options.pbx), `tenants[${i}].pbx`),
      pbxCredentials: credentials.value === undefined ? undefined : { username: credentials.field('username').string(), passwordEnv: credentials.field('passwordEnv').string() },
      recording: t.field('recording').boolean(DEFAULTS.tenant.recording),
      masking: {
        agent: masking.field('agent').oneOf(MASK_MODES, DEFAULTS.tenant.masking.agent),
        recording: masking.field('recording').oneOf(MASK_MODES, DEFAULTS.tenant.masking.recording),
      },
      maskPolicy: t.field('maskPolicy').oneOf(['always', 'secure'] as const, DEFAULTS.tenant.maskPolicy),
      payments: readPayments(t.field('payments')),
      webhooks: readWebhooks(t.field('webhooks')),
    };
  });
  const ids = new Set<string>();
  for (const [i, t] of tenants.entries()) {
    if (ids.has(t.id)) throw new ConfigError(`tenants[${i}].id`, `"${t.id}" is used twice`);
    ids.add(t.id);
  }
  if (tenants.length === 0) {
    // embedded default: the demo tenant, every call routed to --pbx (default: a sip-sim agent
    // on 127.0.0.1:5070, as the README's quick start runs one)
    tenants.push({
      id: DEMO_TENANT_ID,
      name: 'Demo tenant',
      numbers: ['*'],
      sources: [],
      pbx: sipUri(options.pbx ?? DEMO_PBX, '--pbx'),
      pbxCredentials: undefined,
      recording: DEFAULTS.tenant.recording,
      masking: { ...DEFAULTS.tenant.masking },
      maskPolicy: DEFAULTS.tenant.maskPolicy,
      payments: DEFAULTS.payments,
      webhooks: undefined,
    });
  }

  const sipPort = cliSip?.port ?? sip.field('port').integer(DEFAULTS.sip.port, 0, 65535);
  const sipTcp = sip.field('tcp').boolean(DEFAULTS.sip.tcp);
  const sipTls = readSipTls(sip.field('tls'), engine, sipTcp ? sipPort : undefined);
  return {
    sip: {
      engine,
      host: cliSip?.host ?? sip.field('host').string(DEFAULTS.sip.host),
      port: sipPort,
      udp: sip.field('udp').boolean(DEFAULTS.sip.udp),
      tcp: sipTcp,
      advertise: sip.field('advertise').optionalString(),
      drachtio,
      timers: {
        T1: timers.field('T1').integer(DEFAULTS.sip.timers.T1, 1, 60_000),
        T2: timers.field('T2').integer(DEFAULTS.sip.timers.T2, 1, 600_000),
        T4: timers.field('T4').integer(DEFAULTS.sip.timers.T4, 1, 600_000),
      },
      tls: sipTls,
    },
    media: {
      host: media.field('host').string(DEFAULTS.media.host),
      advertise: media.field('advertise').optionalString(),
      portMin,
      portMax,
      noRtpTimeoutMs: media.field('noRtpTimeoutMs').integer(DEFAULTS.media.noRtpTimeoutMs, 1000, 3_600_000),
      maskDelayMs: media.field('maskDelayMs').integer(DEFAULTS.media.maskDelayMs, 0, 20),
    },
    calls: { max: root.field('calls').object().only(['max']).field('max').integer(DEFAULTS.calls.max, 1, 100_000) },
    http: {
      host: cliHttp?.host ?? httpReader.field('host').string(DEFAULTS.http.host),
      port: cliHttp?.port ?? httpReader.field('port').integer(DEFAULTS.http.port, 0, 65535),
      tls: httpTls.value === undefined ? undefined : { certFile: httpTls.field('certFile').string(), keyFile: httpTls.field('keyFile').string() },
      frameAncestors,
    },
    dataDir: options.data ?? root.field('dataDir').string(DEFAULTS.dataDir),
    tenants,
  };
}

/** Picks the tenant for a call: by called number first, then by source address. */
export function routeTenant(tenants: readonly TenantConfig[], calledNumber: string | undefined, sourceHost: string): TenantConfig | undefined {
  if (calledNumber !== undefined) {
    const exact = tenants.find((t) => t.numbers.includes(calledNumber));
    if (exact) return exact;
    let best: TenantConfig | undefined;
    let bestLength = -1;
    for (const t of tenants)
      for (const n of t.numbers) {
        if (!n.endsWith('*')) continue;
        const prefix = n.slice(0, -1);
        if (calledNumber.startsWith(prefix) && prefix.length > bestLength) {
          best = t;
          bestLength = prefix.length;
        }
      }
    if (best && bestLength > 0) return best;
  }
  const bySource = tenants.find((t) => t.sources.some((s) => inCidr(sourceHost, s)));
  if (bySource) return bySource;
  return tenants.find((t) => t.numbers.includes('*'));
}

function inCidr(host: string, cidr: string): boolean {
  const m = CIDR.exec(cidr);
  const h = CIDR.exec(host);
  if (!m || !h) return false;
  const bits = m[2] === undefined ? 32 : Number(m[2]);
  const toInt = (ip: string): number => ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (toInt(h[1]!) & mask) === (toInt(m[1]!) & mask);
}
