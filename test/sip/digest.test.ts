/**
 * Client-side SIP Digest authentication: the RFC examples, a challenged INVITE answered, nonce
 * counting, algorithm choice, loop refusal, and every computed response checked against an
 * independent implementation (Python's hashlib in a child process).
 */

import { execFileSync } from 'node:child_process';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { HushpayError, SipDigestError } from '../../src/errors.ts';
import { DigestCredentials, answerChallenge, authorize, chooseChallenge, parseChallenge } from '../../src/sip/digest.ts';
import type { DigestChallenge } from '../../src/sip/digest.ts';
import { parseCSeq, parseSipMessage, parseVia, serializeSipMessage, tagOf, textBody } from '../../src/sip/message.ts';
import type { SipRequest, SipResponse } from '../../src/sip/message.ts';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Parameters of an Authorization value, quoted strings unescaped (a test-side reading). */
function credentialParams(value: string): Map<string, string> {
  expect(value.startsWith('Digest ')).toBe(true);
  const params = new Map<string, string>();
  const re = /([a-z-]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/gi;
  for (const m of value.slice(7).matchAll(re)) params.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
  return params;
}

interface Case {
  algorithm: string;
  username: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  nc?: string;
  cnonce?: string;
  qop?: string;
  body?: string;
}

/** RFC 7616 §3.4.1 written again in Python; returns the response for each case. */
const PYTHON = `
import hashlib, json, sys
names = {'MD5': 'md5', 'SHA-256': 'sha256', 'SHA-512-256': 'sha512_256'}
out = []
for c in json.load(sys.stdin):
    alg = c['algorithm']
    sess = alg.endswith('-sess')
    name = names[alg[:-5] if sess else alg]
    H = lambda b: hashlib.new(name, b).hexdigest()
    ha1 = H(('%s:%s:%s' % (c['username'], c['realm'], c['password'])).encode())
    if sess:
        ha1 = H(('%s:%s:%s' % (ha1, c['nonce'], c['cnonce'])).encode())
    qop = c.get('qop')
    if qop == 'auth-int':
        ha2 = H(('%s:%s:%s' % (c['method'], c['uri'], H(c.get('body', '').encode()))).encode())
    else:
        ha2 = H(('%s:%s' % (c['method'], c['uri'])).encode())
    if qop:
        data = '%s:%s:%s:%s:%s' % (c['nonce'], c['nc'], c['cnonce'], qop, ha2)
    else:
        data = '%s:%s' % (c['nonce'], ha2)
    out.append(H(('%s:%s' % (ha1, data)).encode()))
print(json.dumps(out))
`;

function pythonResponses(cases: Case[]): string[] {
  return JSON.parse(execFileSync('python3', ['-c', PYTHON], { input: JSON.stringify(cases), encoding: 'utf8' })) as string[];
}

/** The Case an Authorization value describes, for Python to compute on its own. */
function caseFrom(value: string, password: string, method: string, body?: string): Case {
  const p = credentialParams(value);
  const c: Case = { algorithm: p.get('algorithm')!, username: p.get('username')!, realm: p.get('realm')!, password, method, uri: p.get('uri')!, nonce: p.get('nonce')! };
  const qop = p.get('qop');
  if (qop !== undefined) Object.assign(c, { qop, nc: p.get('nc')!, cnonce: p.get('cnonce')! });
  else if (p.has('cnonce')) c.cnonce = p.get('cnonce')!;
  if (body !== undefined) c.body = body;
  return c;
}

const CRLF = '\r\n';
const SDP = ['v=0', 'o=hushpay 1 1 IN IP4 192.0.2.10', 's=-', 'c=IN IP4 192.0.2.10', 't=0 0', 'm=audio 40000 RTP/AVP 0 101', 'a=rtpmap:101 telephone-event/8000', ''].join(CRLF);

function invite(extra: string[] = []): SipRequest {
  const text = [
    'INVITE sip:+441632960000@trunk.example.net SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-first-1;rport',
    'Max-Forwards: 70',
    'From: "Hushpay" <sip:hushpay@192.0.2.10>;tag=from-tag-1',
    'To: <sip:+441632960000@trunk.example.net>',
    'Call-ID: call-1@192.0.2.10',
    'CSeq: 1 INVITE',
    'Contact: <sip:hushpay@192.0.2.10:5060>',
    'Content-Type: application/sdp',
    ...extra,
    `Content-Length: ${Buffer.byteLength(SDP)}`,
    '',
    SDP,
  ].join(CRLF);
  const message = parseSipMessage(textBody(text));
  if (message.kind !== 'request') throw new Error('expected a request');
  return message;
}

function challengeResponse(request: SipRequest, status: 401 | 407, challenges: string[]): SipResponse {
  const header = status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
  const reason = status === 401 ? 'Unauthorized' : 'Proxy Authentication Required';
  const text = [
    `SIP/2.0 ${status} ${reason}`,
    `Via: ${request.headers.getAll('Via')[0]!};received=192.0.2.10`,
    `From: ${request.headers.get('From')!}`,
    `To: ${request.headers.get('To')!};tag=proxy-tag-9`,
    `Call-ID: ${request.headers.get('Call-ID')!}`,
    `CSeq: ${request.headers.get('CSeq')!}`,
    ...challenges.map((c) => `${header}: ${c}`),
    'Content-Length: 0',
    '',
    '',
  ].join(CRLF);
  const message = parseSipMessage(textBody(text));
  if (message.kind !== 'response') throw new Error('expected a response');
  return message;
}

const RFC7616 = {
  realm: 'http-auth@example.org',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
};

function rfc7616Challenge(algorithm: string): DigestChallenge {
  return parseChallenge(`Digest realm="${RFC7616.realm}", qop="auth, auth-int", algorithm=${algorithm}, nonce="${RFC7616.nonce}", opaque="${RFC7616.opaque}"`);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

describe('parseChallenge', () => {
  it('reads quoted strings with escapes, tokens, any order, stale, and keeps unknown parameters', () => {
    const c = parseChallenge('DIGEST nonce="n\\"o\\\\nce",  stale=TRUE ,algorithm=sha-256-SESS, realm="pbx \\"east\\"", qop="auth,auth-int", opaque="op", x-vendor=abc, domain="sip:a sip:b"');
    expect(c.realm).toBe('pbx "east"');
    expect(c.nonce).toBe('n"o\\nce');
    expect(c.opaque).toBe('op');
    expect(c.algorithm).toBe('SHA-256-sess');
    expect(c.qop).toEqual(['auth', 'auth-int']);
    expect(c.stale).toBe(true);
    expect(c.params.get('x-vendor')).toBe('abc');
    expect(c.params.get('domain')).toBe('sip:a sip:b');
  });

  it('defaults to MD5, no qop, not stale, no opaque', () => {
    const c = parseChallenge('Digest realm="asterisk",nonce="1a2b3c"');
    expect(c).toMatchObject({ realm: 'asterisk', nonce: '1a2b3c', algorithm: 'MD5', qop: [], stale: false, opaque: undefined });
    expect(parseChallenge('Digest realm="a", nonce="b", stale=false, qop=auth').qop).toEqual(['auth']);
    expect(parseChallenge('Digest realm="a", nonce="b", stale=false').stale).toBe(false);
  });

  it('keeps an algorithm it does not know as sent', () => {
    expect(parseChallenge('Digest realm="a", nonce="b", algorithm=AKAv1-MD5').algorithm).toBe('AKAv1-MD5');
  });

  it.each([
    ['Basic realm="trunk"', 'not a Digest challenge'],
    ['Bearer abc.def', 'not a Digest challenge'],
    ['Digest nonce="abc"', 'Digest challenge without a realm'],
    ['Digest realm="abc"', 'Digest challenge without a nonce'],
    ['Digest realm="abc", nonce=""', 'Digest challenge without a nonce'],
    ['Digest realm="abc, nonce=def', 'unterminated quoted string in an authentication header'],
    ['Digest realm="a", realm="b", nonce="c"', 'authentication parameter given twice'],
    ['Digest realm="a" nonce="c"', 'authentication parameters not separated by commas'],
    ['Digest realm="a", nonce="b", Digest realm="c", nonce="d"', 'several challenges in one value'],
    ['', 'empty authentication header'],
  ])('rejects %j with a SipDigestError', (value, reason) => {
    let caught: unknown;
    try {
      parseChallenge(value);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SipDigestError);
    expect(caught).toBeInstanceOf(HushpayError);
    expect((caught as SipDigestError).code).toBe('HP_ERR_SIP_DIGEST');
    expect((caught as SipDigestError).reason).toBe(reason);
  });
});

// ---------------------------------------------------------------------------------------------
// Computing responses
// ---------------------------------------------------------------------------------------------

describe('authorize', () => {
  it('gives the RFC 7616 §3.9.1 MD5 and SHA-256 responses', () => {
    const options = { method: 'GET', uri: '/dir/index.html', username: 'Mufasa', password: 'Circle of Life', nonceCount: 1, cnonce: RFC7616.cnonce };
    const md5 = credentialParams(authorize({ ...options, challenge: rfc7616Challenge('MD5') }));
    expect(md5.get('response')).toBe('8ca523f5e9506fed4657c9700eebdbec');
    const sha = authorize({ ...options, challenge: rfc7616Challenge('SHA-256') });
    const p = credentialParams(sha);
    expect(p.get('response')).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    expect(Object.fromEntries(p)).toEqual({
      username: 'Mufasa',
      realm: RFC7616.realm,
      nonce: RFC7616.nonce,
      uri: '/dir/index.html',
      response: '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
      algorithm: 'SHA-256',
      opaque: RFC7616.opaque,
      qop: 'auth',
      nc: '00000001',
      cnonce: RFC7616.cnonce,
    });
    // qop and nc are tokens, never quoted (RFC 7616 §3.4)
    expect(sha).toContain(', qop=auth, nc=00000001, ');
  });

  it('has a Python referee that itself gives the RFC responses', () => {
    const rfc7616 = { username: 'Mufasa', realm: RFC7616.realm, password: 'Circle of Life', method: 'GET', uri: '/dir/index.html', nonce: RFC7616.nonce, nc: '00000001', cnonce: RFC7616.cnonce, qop: 'auth' };
    const rfc2617 = { ...rfc7616, realm: 'testrealm@host.com', password: 'Circle Of Life', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', cnonce: '0a4f113b' };
    expect(pythonResponses([{ ...rfc7616, algorithm: 'MD5' }, { ...rfc7616, algorithm: 'SHA-256' }, { ...rfc2617, algorithm: 'MD5' }])).toEqual([
      '8ca523f5e9506fed4657c9700eebdbec',
      '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
      '6629fae49393a05397450978507c4ef1',
    ]);
  });

  it('gives the RFC 2617 §3.5 response', () => {
    const challenge = parseChallenge('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"');
    const value = authorize({ challenge, method: 'GET', uri: '/dir/index.html', username: 'Mufasa', password: 'Circle Of Life', nonceCount: 1, cnonce: '0a4f113b' });
    expect(credentialParams(value).get('response')).toBe('6629fae49393a05397450978507c4ef1');
    expect(credentialParams(value).get('opaque')).toBe('5ccc069c403ebaf9f0171e9517f40e41');
  });

  it('uses the RFC 2069 form (no qop, nc or cnonce) when the challenge has no qop', () => {
    const challenge = parseChallenge('Digest realm="asterisk", nonce="4f2a9b1c"');
    const value = authorize({ challenge, method: 'REGISTER', uri: 'sip:pbx.example.com', username: '6001', password: 's3cr3t!', nonceCount: 1 });
    const p = credentialParams(value);
    expect([...p.keys()].sort()).toEqual(['algorithm', 'nonce', 'realm', 'response', 'uri', 'username']);
    expect(p.get('response')).toBe(pythonResponses([caseFrom(value, 's3cr3t!', 'REGISTER')])[0]);
  });

  it('does auth-int only when it is the only qop, hashing the body', () => {
    const challenge = parseChallenge('Digest realm="trunk", nonce="abc123", qop="auth-int", algorithm=SHA-256');
    const body = textBody(SDP);
    const value = authorize({ challenge, method: 'INVITE', uri: 'sip:+441632960000@trunk.example.net', username: 'hushpay', password: 'pw', body, nonceCount: 3 });
    const p = credentialParams(value);
    expect(p.get('qop')).toBe('auth-int');
    expect(p.get('nc')).toBe('00000003');
    expect(p.get('cnonce')).toMatch(/^[0-9a-f]{32}$/);
    expect(p.get('response')).toBe(pythonResponses([caseFrom(value, 'pw', 'INVITE', SDP)])[0]);
    // a different body gives a different response
    const other = authorize({ challenge, method: 'INVITE', uri: 'sip:+441632960000@trunk.example.net', username: 'hushpay', password: 'pw', body: textBody('x'), nonceCount: 3, cnonce: p.get('cnonce')! });
    expect(credentialParams(other).get('response')).not.toBe(p.get('response'));
  });

  it('computes HA1 with the nonce and cnonce for the -sess algorithms', () => {
    const cases: string[] = [];
    for (const algorithm of ['MD5-sess', 'SHA-256-sess', 'SHA-512-256-sess', 'SHA-512-256']) {
      const challenge = parseChallenge(`Digest realm="sess.example", nonce="nonce-${algorithm}", qop="auth", algorithm=${algorithm}`);
      cases.push(authorize({ challenge, method: 'BYE', uri: 'sip:pbx@sess.example', username: 'alice', password: 'Fünf Łódź', nonceCount: 0x1f, cnonce: 'cn0nce' }));
    }
    const expected = pythonResponses(cases.map((v) => caseFrom(v, 'Fünf Łódź', 'BYE')));
    expect(cases.map((v) => credentialParams(v).get('response'))).toEqual(expected);
    expect(credentialParams(cases[0]!).get('nc')).toBe('0000001f');
    // -sess really differs from the plain algorithm
    const plain = authorize({ challenge: parseChallenge('Digest realm="sess.example", nonce="nonce-MD5-sess", qop="auth"'), method: 'BYE', uri: 'sip:pbx@sess.example', username: 'alice', password: 'Fünf Łódź', nonceCount: 0x1f, cnonce: 'cn0nce' });
    expect(credentialParams(plain).get('response')).not.toBe(credentialParams(cases[0]!).get('response'));
  });

  it('draws a fresh random cnonce when none is given', () => {
    const challenge = rfc7616Challenge('SHA-256');
    const options = { challenge, method: 'GET', uri: '/', username: 'u', password: 'p', nonceCount: 1 };
    const a = credentialParams(authorize(options)).get('cnonce');
    const b = credentialParams(authorize(options)).get('cnonce');
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
  });

  it('escapes quotes in values and refuses control characters (no header injection)', () => {
    const challenge = parseChallenge('Digest realm="r", nonce="n"');
    const value = authorize({ challenge, method: 'OPTIONS', uri: 'sip:x', username: 'a"b\\c', password: 'p', nonceCount: 1 });
    expect(value).toContain('username="a\\"b\\\\c"');
    expect(credentialParams(value).get('username')).toBe('a"b\\c');
    expect(() => authorize({ challenge, method: 'OPTIONS', uri: 'sip:x', username: 'evil\r\nVia: x', password: 'p', nonceCount: 1 })).toThrow(SipDigestError);
  });

  it('refuses what it cannot answer', () => {
    const base = { method: 'INVITE', uri: 'sip:x', username: 'u', password: 'p', nonceCount: 1 };
    const reason = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(SipDigestError);
        return (e as SipDigestError).reason;
      }
      return 'no error';
    };
    expect(reason(() => authorize({ ...base, challenge: parseChallenge('Digest realm="r", nonce="n", algorithm=AKAv1-MD5') }))).toBe('unsupported digest algorithm');
    expect(reason(() => authorize({ ...base, challenge: parseChallenge('Digest realm="r", nonce="n", qop="auth-conf"') }))).toBe('no qop hushpay can answer');
    expect(reason(() => authorize({ ...base, challenge: parseChallenge('Digest realm="r", nonce="n", algorithm=MD5-sess') }))).toBe('no qop hushpay can answer');
    expect(reason(() => authorize({ ...base, nonceCount: 0, challenge: parseChallenge('Digest realm="r", nonce="n"') }))).toBe('nonce count out of range');
    expect(reason(() => authorize({ ...base, nonceCount: 2 ** 32, challenge: parseChallenge('Digest realm="r", nonce="n"') }))).toBe('nonce count out of range');
  });
});

// ---------------------------------------------------------------------------------------------
// Choosing
// ---------------------------------------------------------------------------------------------

describe('chooseChallenge', () => {
  const request = invite();

  it('takes SHA-256 over MD5 whichever comes first (RFC 8760 §2.4, local policy)', () => {
    for (const order of [
      ['Digest realm="pbx", nonce="m", algorithm=MD5, qop="auth"', 'Digest realm="pbx", nonce="s", algorithm=SHA-256, qop="auth"'],
      ['Digest realm="pbx", nonce="s", algorithm=SHA-256, qop="auth"', 'Digest realm="pbx", nonce="m", algorithm=MD5, qop="auth"'],
    ]) {
      expect(chooseChallenge(challengeResponse(request, 401, order))?.algorithm).toBe('SHA-256');
      expect(chooseChallenge(challengeResponse(request, 407, order))?.nonce).toBe('s');
    }
  });

  it('keeps the server order among equals, and skips what it cannot answer', () => {
    const response = challengeResponse(request, 401, [
      'Basic realm="pbx"',
      'Digest realm="pbx", nonce="aka", algorithm=AKAv1-MD5, qop="auth"',
      'Digest realm="pbx", nonce="first", algorithm=SHA-512-256, qop="auth"',
      'Digest realm="pbx", nonce="second", algorithm=SHA-256, qop="auth"',
      'Digest realm="pbx", nonce="md5"',
    ]);
    expect(chooseChallenge(response)?.nonce).toBe('first');
    expect(chooseChallenge(challengeResponse(request, 401, ['Digest realm="pbx", nonce="aka", algorithm=AKAv1-MD5', 'Basic realm="x"']))).toBeUndefined();
  });

  it('reads the header that goes with the status', () => {
    const www = challengeResponse(request, 401, ['Digest realm="pbx", nonce="n"']);
    expect(chooseChallenge(www)?.realm).toBe('pbx');
    // the same challenge under the wrong header name is not an answerable 407
    const wrong: SipResponse = { ...www, status: 407 };
    expect(chooseChallenge(wrong)).toBeUndefined();
    expect(chooseChallenge({ ...www, status: 200 })).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// The retried request
// ---------------------------------------------------------------------------------------------

describe('answerChallenge', () => {
  const password = 'Tr0ub4dor&3-not-in-logs';

  it('answers an INVITE challenged with 407: Proxy-Authorization, CSeq + 1, same Call-ID and From tag, new branch', () => {
    const first = invite();
    const response = challengeResponse(first, 407, [
      'Digest realm="trunk.example.net", nonce="Xa9fk2Lq", opaque="opq", algorithm=MD5, qop="auth"',
      'Digest realm="trunk.example.net", nonce="Yb8gl3Mr", opaque="opq", algorithm=SHA-256, qop="auth"',
    ]);
    const credentials = new DigestCredentials('hushpay', password);
    const retried = answerChallenge(first, response, credentials);
    expect(retried).toBeDefined();
    const r = retried!;
    expect(r.method).toBe('INVITE');
    expect(r.uri).toBe(first.uri);
    expect(parseCSeq(r.headers.get('CSeq')!)).toEqual({ seq: 2, method: 'INVITE' });
    expect(r.headers.get('Call-ID')).toBe(first.headers.get('Call-ID'));
    expect(tagOf(r.headers.get('From'))).toBe('from-tag-1');
    expect(tagOf(r.headers.get('To'))).toBeUndefined(); // the 407's To tag is not copied
    expect(new TextDecoder().decode(r.body)).toBe(SDP);
    expect(r.headers.has('Authorization')).toBe(false);
    const via = parseVia(r.headers.getAll('Via')[0]!);
    expect(via.branch).toMatch(/^z9hG4bK/);
    expect(via.branch).not.toBe('z9hG4bK-first-1');
    expect(via.params.has('rport')).toBe(true);
    expect(via.host).toBe('192.0.2.10');
    // the original is untouched
    expect(first.headers.get('CSeq')).toBe('1 INVITE');
    expect(first.headers.has('Proxy-Authorization')).toBe(false);

    const values = r.headers.getAll('Proxy-Authorization');
    expect(values).toHaveLength(1);
    const p = credentialParams(values[0]!);
    expect(p.get('algorithm')).toBe('SHA-256');
    expect(p.get('nonce')).toBe('Yb8gl3Mr');
    expect(p.get('uri')).toBe('sip:+441632960000@trunk.example.net');
    expect(p.get('opaque')).toBe('opq');
    expect(p.get('nc')).toBe('00000001');
    expect(p.get('response')).toBe(pythonResponses([caseFrom(values[0]!, password, 'INVITE')])[0]);

    // it still serializes and parses as a SIP message
    const again = parseSipMessage(serializeSipMessage(r));
    expect(again.kind).toBe('request');
    expect(again.headers.get('Proxy-Authorization')).toBe(values[0]);

    // the UAS then challenges with 401 for its own realm: proxy credentials are kept
    const second = challengeResponse(r, 401, ['Digest realm="pbx.example.com", nonce="u1", qop="auth"']);
    const third = answerChallenge(r, second, credentials)!;
    expect(parseCSeq(third.headers.get('CSeq')!).seq).toBe(3);
    expect(third.headers.getAll('Proxy-Authorization')).toEqual(values);
    expect(credentialParams(third.headers.get('Authorization')!).get('realm')).toBe('pbx.example.com');
  });

  it('also takes a plain { username, password } pair', () => {
    const first = invite();
    const response = challengeResponse(first, 401, ['Digest realm="pbx", nonce="abc", qop="auth"']);
    const retried = answerChallenge(first, response, { username: 'hushpay', password })!;
    const value = retried.headers.get('Authorization')!;
    expect(credentialParams(value).get('nc')).toBe('00000001');
    expect(credentialParams(value).get('response')).toBe(pythonResponses([caseFrom(value, password, 'INVITE')])[0]);
  });

  it('counts nonce uses: nc increments across requests reusing one challenge, restarts for a new nonce', () => {
    const credentials = new DigestCredentials('hushpay', password);
    const challenge = parseChallenge('Digest realm="pbx", nonce="reused", qop="auth", algorithm=SHA-256');
    const target = { method: 'OPTIONS', uri: 'sip:pbx.example.com' };
    const a = credentialParams(credentials.authorize(challenge, target));
    const b = credentialParams(credentials.authorize(challenge, target));
    expect([a.get('nc'), b.get('nc')]).toEqual(['00000001', '00000002']);
    expect(a.get('response')).not.toBe(b.get('response'));
    const fresh = parseChallenge('Digest realm="pbx", nonce="fresh", qop="auth", algorithm=SHA-256');
    expect(credentialParams(credentials.authorize(fresh, target)).get('nc')).toBe('00000001');
    expect(credentialParams(credentials.authorize(challenge, target)).get('nc')).toBe('00000003');

    // through answerChallenge too: two calls challenged with the same nonce
    const response = challengeResponse(invite(), 407, ['Digest realm="pbx", nonce="shared", qop="auth"']);
    const one = answerChallenge(invite(), response, credentials)!;
    const two = answerChallenge(invite(), response, credentials)!;
    expect(credentialParams(one.headers.get('Proxy-Authorization')!).get('nc')).toBe('00000001');
    expect(credentialParams(two.headers.get('Proxy-Authorization')!).get('nc')).toBe('00000002');
  });

  it('refuses to loop: credentials already sent for the realm and a challenge that is not stale', () => {
    const credentials = new DigestCredentials('hushpay', 'wrong password');
    const first = invite();
    const challenge = 'Digest realm="pbx", nonce="n1", qop="auth"';
    const retried = answerChallenge(first, challengeResponse(first, 401, [challenge]), credentials)!;
    expect(retried).toBeDefined();
    // the same nonce again, not stale: the password was refused
    expect(answerChallenge(retried, challengeResponse(retried, 401, [challenge]), credentials)).toBeUndefined();
    // a new nonce but not stale (Asterisk's way of refusing): still refused, no endless retries
    expect(answerChallenge(retried, challengeResponse(retried, 401, ['Digest realm="pbx", nonce="n2", qop="auth"']), credentials)).toBeUndefined();
    expect(answerChallenge(retried, challengeResponse(retried, 401, ['Digest realm="pbx", nonce="n2", qop="auth", stale=FALSE']), credentials)).toBeUndefined();
    // stale with the very nonce already used makes no sense: refused too
    expect(answerChallenge(retried, challengeResponse(retried, 401, ['Digest realm="pbx", nonce="n1", qop="auth", stale=TRUE']), credentials)).toBeUndefined();
    // stale=TRUE with a new nonce: the credentials were good, the nonce expired; answer it
    const stale = answerChallenge(retried, challengeResponse(retried, 401, ['Digest realm="pbx", nonce="n3", qop="auth", stale=TRUE']), credentials)!;
    expect(stale).toBeDefined();
    expect(stale.headers.getAll('Authorization')).toHaveLength(1);
    const answer = credentialParams(stale.headers.get('Authorization')!);
    expect([answer.get('nonce'), answer.get('nc')]).toEqual(['n3', '00000001']);
    expect(parseCSeq(stale.headers.get('CSeq')!).seq).toBe(3);
  });

  it('answers each realm of a forked 407, and gives up when nothing is answerable', () => {
    const first = invite();
    const response = challengeResponse(first, 407, [
      'Digest realm="east", nonce="e1", qop="auth"',
      'Digest realm="west", nonce="w1", qop="auth", algorithm=MD5',
      'Digest realm="west", nonce="w2", qop="auth", algorithm=SHA-256',
    ]);
    const retried = answerChallenge(first, response, new DigestCredentials('hushpay', password))!;
    const values = retried.headers.getAll('Proxy-Authorization').map(credentialParams);
    expect(values.map((p) => [p.get('realm'), p.get('nonce')])).toEqual([['east', 'e1'], ['west', 'w2']]);

    expect(answerChallenge(first, challengeResponse(first, 401, ['Digest realm="x", nonce="y", algorithm=AKAv1-MD5']), { username: 'u', password })).toBeUndefined();
    expect(answerChallenge(first, challengeResponse(first, 401, ['Basic realm="x"']), { username: 'u', password })).toBeUndefined();
    expect(answerChallenge(first, { ...challengeResponse(first, 401, []), status: 403 }, { username: 'u', password })).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// The password stays secret
// ---------------------------------------------------------------------------------------------

describe('the password', () => {
  const password = 'Circle of Life 4111111111111111';

  it('is in no string form of the credentials', () => {
    const credentials = new DigestCredentials('Mufasa', password);
    for (const text of [String(credentials), `${credentials}`, JSON.stringify(credentials), JSON.stringify({ credentials }), inspect(credentials, { showHidden: true, depth: 5 })]) {
      expect(text).toContain('Mufasa');
      expect(text).not.toContain('Circle');
    }
    expect(Object.keys(credentials)).toEqual(['username']);
  });

  it('is in no header value, returned request or error', () => {
    const first = invite();
    const response = challengeResponse(first, 407, ['Digest realm="r", nonce="n", qop="auth-int"']);
    const retried = answerChallenge(first, response, new DigestCredentials('Mufasa', password))!;
    const bytes = new TextDecoder().decode(serializeSipMessage(retried));
    expect(bytes).not.toContain('Circle');
    expect(inspect(retried, { depth: 10 })).not.toContain('Circle');
    const errors: unknown[] = [];
    for (const f of [
      () => authorize({ challenge: parseChallenge('Digest realm="r", nonce="n", algorithm=X'), method: 'INVITE', uri: 'sip:x', username: 'u', password, nonceCount: 1 }),
      () => authorize({ challenge: parseChallenge('Digest realm="r", nonce="n"'), method: 'INVITE', uri: 'sip:x', username: 'u\n', password, nonceCount: 1 }),
      () => new DigestCredentials('u', password).authorize(parseChallenge('Digest realm="r", nonce="n", qop="x"'), { method: 'INVITE', uri: 'sip:x' }),
    ]) {
      try {
        f();
      } catch (e) {
        errors.push(e);
      }
    }
    expect(errors).toHaveLength(3);
    for (const e of errors) {
      expect(e).toBeInstanceOf(SipDigestError);
      expect(`${String(e)} ${inspect(e)} ${JSON.stringify(e)}`).not.toContain('Circle');
    }
  });
});
