/**
 * Client-side Digest authentication for SIP: what hushpay does when the PBX or the trunk
 * answers a request with 401 (WWW-Authenticate → Authorization) or 407 (Proxy-Authenticate →
 * Proxy-Authorization). RFC 3261 §22 for SIP's use, RFC 7616 §3.4 for the computation,
 * RFC 8760 for SHA-256 and SHA-512-256 in SIP.
 *
 *   A1       = username ":" realm ":" password
 *   A1 -sess = H(username ":" realm ":" password) ":" nonce ":" cnonce
 *   A2       = Method ":" digest-uri                      (qop=auth, or no qop)
 *   A2       = Method ":" digest-uri ":" H(body)          (qop=auth-int)
 *   response = KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))   with qop
 *   response = KD(H(A1), nonce ":" H(A2))                             without (RFC 2069)
 *   KD(secret, data) = H(secret ":" data)
 *
 * The password goes into a hash and nowhere else: no error message, no returned value and no
 * object's string form holds it, and this module never logs.
 */

import { createHash, randomBytes } from 'node:crypto';
import { SipDigestError } from '../errors.ts';
import { formatVia, parseCSeq, parseVia } from './message.ts';
import type { SipRequest, SipResponse } from './message.ts';

/** The algorithms hushpay answers (RFC 7616 §3.2, RFC 8760 §2.1), in their canonical spelling. */
export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess' | 'SHA-512-256' | 'SHA-512-256-sess';

interface AlgorithmInfo {
  readonly name: DigestAlgorithm;
  readonly hash: 'md5' | 'sha256' | 'sha512-256';
  readonly session: boolean;
  /** Higher is stronger; equal strengths keep the server's order (RFC 8760 §2.3). */
  readonly strength: number;
}

const ALGORITHMS: ReadonlyMap<string, AlgorithmInfo> = new Map(
  (
    [
      ['MD5', 'md5', false, 1],
      ['MD5-sess', 'md5', true, 1],
      ['SHA-256', 'sha256', false, 2],
      ['SHA-256-sess', 'sha256', true, 2],
      ['SHA-512-256', 'sha512-256', false, 2],
      ['SHA-512-256-sess', 'sha512-256', true, 2],
    ] as const
  ).map(([name, hash, session, strength]) => [name.toLowerCase(), { name, hash, session, strength }]),
);

/** One parsed Digest challenge (a WWW-Authenticate or Proxy-Authenticate value). */
export interface DigestChallenge {
  readonly realm: string;
  readonly nonce: string;
  readonly opaque: string | undefined;
  /** Canonical spelling when hushpay knows it; `MD5` when the challenge names none; else as sent. */
  readonly algorithm: string;
  /** The qop options offered, lower-cased; empty when the challenge has no qop (RFC 2069 form). */
  readonly qop: readonly string[];
  readonly stale: boolean;
  /** Every parameter as sent (names lower-cased, quoted strings unescaped), unknown ones included. */
  readonly params: ReadonlyMap<string, string>;
}

export interface AuthorizeOptions {
  readonly challenge: DigestChallenge;
  readonly method: string;
  /** The digest-uri: for SIP, the Request-URI of the request being authorized (RFC 3261 §22.4). */
  readonly uri: string;
  readonly username: string;
  readonly password: string;
  /** The message body, hashed for qop=auth-int; empty when absent. */
  readonly body?: Uint8Array | undefined;
  /** How many times this nonce has been used, this use included (1 the first time). */
  readonly nonceCount: number;
  /** The client nonce; a random one (node:crypto) when not given. Unused without qop. */
  readonly cnonce?: string | undefined;
}

/** What answerChallenge needs: a DigestCredentials (which counts nonce uses) or a plain pair. */
export type DigestSecret = DigestCredentials | { readonly username: string; readonly password: string };

// ---------------------------------------------------------------------------------------------
// Parsing (RFC 7235 §2.1 / RFC 7616 §3.3 grammar, SIP's RFC 3261 §25.1 quoted-string)
// ---------------------------------------------------------------------------------------------

interface AuthItem {
  readonly scheme: string;
  readonly params: Map<string, string>;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/;

function malformed(reason: string): SipDigestError {
  return new SipDigestError(reason);
}

/**
 * Splits an authentication header value into its challenges (or credentials): a scheme, then
 * comma-separated `name=token` / `name="quoted string"` parameters, several challenges allowed
 * in one value (HTTP's rule; SIP sends one per header line). A token68 (Basic, Negotiate) is
 * skipped over, kept as no parameters.
 */
function parseAuthList(value: string): AuthItem[] {
  const items: AuthItem[] = [];
  const n = value.length;
  let i = 0;
  const ws = (): void => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  const separators = (): void => {
    for (;;) {
      ws();
      if (value[i] !== ',') return;
      i++;
    }
  };
  const token = (): string => {
    const start = i;
    while (i < n && TCHAR.test(value[i]!)) i++;
    return value.slice(start, i);
  };

  separators();
  while (i < n) {
    const scheme = token();
    if (!scheme) throw malformed('authentication header is not "scheme param=value, …"');
    if (i < n && value[i] !== ' ' && value[i] !== '\t' && value[i] !== ',') throw malformed('authentication scheme is not a token');
    const item: AuthItem = { scheme, params: new Map() };
    items.push(item);
    ws();
    const token68 = TOKEN68.exec(value.slice(i));
    if (token68) {
      i += token68[0].length;
      separators();
      continue;
    }
    while (i < n) {
      const save = i;
      const name = token();
      if (!name) throw malformed('authentication parameter name is not a token');
      ws();
      if (value[i] !== '=') {
        i = save; // a token not followed by '=': the next challenge's scheme
        break;
      }
      i++;
      ws();
      let v = '';
      if (value[i] === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const c = value[i]!;
          if (c === '\\') {
            if (i + 1 >= n) break;
            v += value[i + 1];
            i += 2;
          } else if (c === '"') {
            i++;
            closed = true;
            break;
          } else {
            v += c;
            i++;
          }
        }
        if (!closed) throw malformed('unterminated quoted string in an authentication header');
      } else {
        // A token; be liberal and take anything up to whitespace or a comma.
        const start = i;
        while (i < n && value[i] !== ',' && value[i] !== ' ' && value[i] !== '\t' && value[i] !== '"') i++;
        v = value.slice(start, i);
        if (!v) throw malformed('authentication parameter without a value');
      }
      const key = name.toLowerCase();
      if (item.params.has(key)) throw malformed('authentication parameter given twice');
      item.params.set(key, v);
      ws();
      if (i >= n) break;
      if (value[i] !== ',') throw malformed('authentication parameters not separated by commas');
      separators();
    }
  }
  return items;
}

function toChallenge(item: AuthItem): DigestChallenge {
  if (item.scheme.toLowerCase() !== 'digest') throw malformed('not a Digest challenge');
  const p = item.params;
  const realm = p.get('realm');
  if (realm === undefined) throw malformed('Digest challenge without a realm');
  const nonce = p.get('nonce');
  if (!nonce) throw malformed('Digest challenge without a nonce');
  const sent = p.get('algorithm');
  const algorithm = sent === undefined ? 'MD5' : (ALGORITHMS.get(sent.toLowerCase())?.name ?? sent);
  const qop = (p.get('qop') ?? '')
    .split(',')
    .map((q) => q.trim().toLowerCase())
    .filter((q) => q.length > 0);
  return { realm, nonce, opaque: p.get('opaque'), algorithm, qop, stale: p.get('stale')?.toLowerCase() === 'true', params: p };
}

/**
 * Parses one WWW-Authenticate / Proxy-Authenticate value holding one Digest challenge.
 * Throws SipDigestError for another scheme, several challenges, a missing realm or nonce, or
 * a value that is not the grammar.
 */
export function parseChallenge(value: string): DigestChallenge {
  const items = parseAuthList(value);
  const first = items[0];
  if (!first) throw malformed('empty authentication header');
  if (items.length > 1) throw malformed('several challenges in one value');
  return toChallenge(first);
}

/** Every Digest challenge in a list of header values; other schemes and broken values skipped. */
function digestChallenges(values: readonly string[]): DigestChallenge[] {
  const out: DigestChallenge[] = [];
  for (const value of values) {
    let items: AuthItem[];
    try {
      items = parseAuthList(value);
    } catch {
      continue;
    }
    for (const item of items) {
      try {
        out.push(toChallenge(item));
      } catch {
        // not Digest, or no realm/nonce: another challenge may still do
      }
    }
  }
  return out;
}

/** The algorithm and qop hushpay would answer a challenge with, or undefined if it cannot. */
function plan(challenge: DigestChallenge): { algorithm: AlgorithmInfo; qop: 'auth' | 'auth-int' | undefined } | undefined {
  const algorithm = ALGORITHMS.get(challenge.algorithm.toLowerCase());
  if (!algorithm) return undefined;
  if (challenge.qop.length === 0) {
    // -sess needs a cnonce, and without qop none is sent (RFC 2617 §3.2.2): not answerable.
    return algorithm.session ? undefined : { algorithm, qop: undefined };
  }
  if (challenge.qop.includes('auth')) return { algorithm, qop: 'auth' };
  if (challenge.qop.includes('auth-int')) return { algorithm, qop: 'auth-int' };
  return undefined;
}

function challengeHeader(status: number): { challenge: string; answer: string } | undefined {
  if (status === 401) return { challenge: 'WWW-Authenticate', answer: 'Authorization' };
  if (status === 407) return { challenge: 'Proxy-Authenticate', answer: 'Proxy-Authorization' };
  return undefined;
}

function strongest(challenges: readonly DigestChallenge[]): DigestChallenge | undefined {
  let best: DigestChallenge | undefined;
  let bestStrength = 0;
  for (const c of challenges) {
    const strength = plan(c)?.algorithm.strength ?? 0;
    if (strength > bestStrength) {
      best = c;
      bestStrength = strength;
    }
  }
  return best;
}

/**
 * The challenge to answer in a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate): of those
 * hushpay can answer, the strongest algorithm (SHA-256 and SHA-512-256 over MD5), and among
 * equals the topmost. RFC 8760 §2.4 has the client take the topmost it supports "unless a local
 * policy dictates otherwise"; this is that policy, because challenges are not integrity
 * protected and an on-path attacker could reorder them to force MD5 (RFC 8760 §3).
 * Undefined for other statuses, or when nothing offered is answerable.
 */
export function chooseChallenge(response: SipResponse): DigestChallenge | undefined {
  const names = challengeHeader(response.status);
  if (!names) return undefined;
  return strongest(digestChallenges(response.headers.getAll(names.challenge)));
}

/** One challenge per realm, the strongest of each, realms in order of first appearance. */
function choosePerRealm(response: SipResponse, challengeName: string): DigestChallenge[] {
  const byRealm = new Map<string, DigestChallenge[]>();
  for (const c of digestChallenges(response.headers.getAll(challengeName))) {
    const list = byRealm.get(c.realm);
    if (list) list.push(c);
    else byRealm.set(c.realm, [c]);
  }
  const out: DigestChallenge[] = [];
  for (const list of byRealm.values()) {
    const best = strongest(list);
    if (best) out.push(best);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Answering
// ---------------------------------------------------------------------------------------------

// Control characters other than tab could end the header line (CR, LF) or corrupt it.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

function quote(value: string, what: string): string {
  if (CONTROL.test(value)) throw malformed(`${what} holds a control character`);
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** 16 random bytes, hex: a fresh client nonce. */
function newCnonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The Authorization / Proxy-Authorization value answering `challenge` (RFC 7616 §3.4):
 * qop=auth when offered, auth-int (hashing `body`) only when it is the only option, the RFC 2069
 * form (no qop, nc, cnonce) when the challenge has no qop. Throws SipDigestError for an
 * algorithm or qop hushpay does not do, a nonce count out of range, or a value with a control
 * character in it.
 */
export function authorize(options: AuthorizeOptions): string {
  const { challenge, method, uri, username, password, nonceCount } = options;
  const how = plan(challenge);
  if (!how) {
    throw malformed(ALGORITHMS.has(challenge.algorithm.toLowerCase()) ? 'no qop hushpay can answer' : 'unsupported digest algorithm');
  }
  if (!Number.isInteger(nonceCount) || nonceCount < 1 || nonceCount > 0xffff_ffff) throw malformed('nonce count out of range');
  if (!/^[!%*+\-.A-Z_`a-z0-9'~]+$/.test(method)) throw malformed('method is not a token');
  const { algorithm, qop } = how;
  const h = (data: string | Uint8Array): string => createHash(algorithm.hash).update(data).digest('hex');

  const cnonce = qop === undefined ? undefined : (options.cnonce ?? newCnonce());
  const nc = nonceCount.toString(16).padStart(8, '0');
  let ha1 = h(`${username}:${challenge.realm}:${password}`);
  if (algorithm.session) ha1 = h(`${ha1}:${challenge.nonce}:${cnonce ?? ''}`);
  const ha2 = qop === 'auth-int' ? h(`${method}:${uri}:${h(options.body ?? new Uint8Array(0))}`) : h(`${method}:${uri}`);
  const response = qop === undefined ? h(`${ha1}:${challenge.nonce}:${ha2}`) : h(`${ha1}:${challenge.nonce}:${nc}:${cnonce ?? ''}:${qop}:${ha2}`);

  const parts = [
    `username=${quote(username, 'username')}`,
    `realm=${quote(challenge.realm, 'realm')}`,
    `nonce=${quote(challenge.nonce, 'nonce')}`,
    `uri=${quote(uri, 'uri')}`,
    `response="${response}"`,
    `algorithm=${algorithm.name}`,
  ];
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque, 'opaque')}`);
  if (qop !== undefined) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce=${quote(cnonce ?? '', 'cnonce')}`);
  return `Digest ${parts.join(', ')}`;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * A username and password, and how many times each (realm, nonce) has been used with them, so
 * that requests reusing a challenge (RFC 3261 §22.3 lets a UAC cache credentials per realm)
 * send nc=00000001, 00000002, … (RFC 7616 §3.4). The password is a private field; the string,
 * JSON and inspect forms show the username only.
 */
export class DigestCredentials {
  /** How many (realm, nonce) counters are kept; the least recently used go first. */
  static readonly MAX_NONCES = 256;

  readonly username: string;
  readonly #password: string;
  readonly #counts = new Map<string, number>();

  constructor(username: string, password: string) {
    this.username = username;
    this.#password = password;
  }

  /** The nonce count for this use of (realm, nonce): 1 the first time, then 2, 3, … */
  nextNonceCount(realm: string, nonce: string): number {
    const key = JSON.stringify([realm, nonce]);
    const count = (this.#counts.get(key) ?? 0) + 1;
    if (count > 0xffff_ffff) throw malformed('nonce count exhausted');
    this.#counts.delete(key);
    this.#counts.set(key, count);
    if (this.#counts.size > DigestCredentials.MAX_NONCES) {
      const oldest = this.#counts.keys().next();
      if (!oldest.done) this.#counts.delete(oldest.value);
    }
    return count;
  }

  /** The header value answering `challenge` for this request, with the next nonce count. */
  authorize(challenge: DigestChallenge, request: { readonly method: string; readonly uri: string; readonly body?: Uint8Array | undefined }): string {
    return authorize({
      challenge,
      method: request.method,
      uri: request.uri,
      username: this.username,
      password: this.#password,
      body: request.body,
      nonceCount: this.nextNonceCount(challenge.realm, challenge.nonce),
    });
  }

  toString(): string {
    return `DigestCredentials(${this.username})`;
  }

  toJSON(): { username: string } {
    return { username: this.username };
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/** Realm → nonce of the Digest credentials already in a request's answer header. */
function credentialsSent(request: SipRequest, answerName: string): Map<string, string> {
  const sent = new Map<string, string>();
  for (const value of request.headers.getAll(answerName)) {
    let items: AuthItem[];
    try {
      items = parseAuthList(value);
    } catch {
      continue;
    }
    for (const item of items) {
      const realm = item.params.get('realm');
      if (item.scheme.toLowerCase() === 'digest' && realm !== undefined) sent.set(realm, item.params.get('nonce') ?? '');
    }
  }
  return sent;
}

function realmOf(value: string): string | undefined {
  try {
    return parseAuthList(value)[0]?.params.get('realm');
  } catch {
    return undefined;
  }
}

/**
 * The request to send again after a 401 or 407 (RFC 3261 §22.2, §22.3, §8.1.3.5): a copy with
 * an Authorization (401) or Proxy-Authorization (407) for each realm challenged (the strongest
 * challenge of each, see chooseChallenge), credentials for other realms kept, CSeq + 1, a new
 * branch on the top Via (it is a new transaction); Call-ID, From tag, To and body unchanged.
 *
 * Undefined when nothing offered can be answered, or when the request already carried
 * credentials for a challenged realm and the challenge is not `stale=TRUE` (or is stale with the
 * very nonce already used): the credentials were refused, and answering again would loop.
 */
export function answerChallenge(request: SipRequest, response: SipResponse, credentials: DigestSecret): SipRequest | undefined {
  const names = challengeHeader(response.status);
  if (!names) return undefined;
  const challenges = choosePerRealm(response, names.challenge);
  if (challenges.length === 0) return undefined;

  const sent = credentialsSent(request, names.answer);
  for (const c of challenges) {
    const nonce = sent.get(c.realm);
    if (nonce !== undefined && (!c.stale || nonce === c.nonce)) return undefined;
  }

  const cseq = parseCSeq(request.headers.get('CSeq') ?? '');
  if (cseq.seq >= 2 ** 31 - 1) throw malformed('CSeq cannot be incremented');

  const headers = request.headers.clone();
  const answered = new Set(challenges.map((c) => c.realm));
  const kept = request.headers.getAll(names.answer).filter((v) => {
    const realm = realmOf(v);
    return realm === undefined || !answered.has(realm);
  });
  headers.remove(names.answer);
  for (const value of kept) headers.append(names.answer, value);
  for (const c of challenges) {
    const target = { method: request.method, uri: request.uri, body: request.body };
    const value =
      credentials instanceof DigestCredentials
        ? credentials.authorize(c, target)
        : authorize({ challenge: c, ...target, username: credentials.username, password: credentials.password, nonceCount: 1 });
    headers.append(names.answer, value);
  }

  headers.set('CSeq', `${cseq.seq + 1} ${cseq.method}`);

  const vias = request.headers.getAll('Via');
  const top = vias[0];
  if (top !== undefined) {
    const via = parseVia(top);
    const branch = `z9hG4bK${randomBytes(12).toString('hex')}`;
    const params = new Map(via.params);
    params.set('branch', branch);
    const renewed = [formatVia({ ...via, params, branch }), ...vias.slice(1)];
    headers.remove('Via');
    for (let i = renewed.length - 1; i >= 0; i--) headers.prepend('Via', renewed[i]!);
  }

  return { kind: 'request', method: request.method, uri: request.uri, headers, body: request.body.slice() };
}
