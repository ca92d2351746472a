/**
 * Certificate and key files for TLS (SIP over TLS, `sip.tls`; HTTPS, `http.tls`), read and
 * checked at start. `validateConfig` stays synchronous and pure: it keeps the paths, and this
 * reads them, so each mistake fails the start with the config field that names the file.
 *
 * Messages name the field, the path and what is wrong (and OpenSSL's error code, when it has
 * one); they never carry a file's contents: a private key must not reach a log or a terminal.
 */

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { ConfigError } from './errors.ts';

/** The paths, as the config holds them. */
export interface TlsFiles {
  /** PEM: this end's certificate, then any intermediates. */
  readonly certFile: string;
  /** PEM: its private key, unencrypted (no passphrase is asked). */
  readonly keyFile: string;
  /** PEM: the CA certificates a peer's certificate must chain to. */
  readonly caFile?: string | undefined;
}

/** The files' contents, checked: hand them to `tls.createServer` / `tls.connect`. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** When the certificate expires (for the start banner and a renewal reminder). */
  readonly notAfter: Date;
}

/**
 * Reads and checks `files`; throws ConfigError naming `${field}.certFile`, `.keyFile` or
 * `.caFile` for a file that is missing or unreadable, that holds no PEM certificate (or key), a
 * certificate that has expired or is not yet valid (at `now`), an encrypted key, a key that does
 * not match the certificate, or anything else OpenSSL refuses.
 */
export async function readTlsFiles(files: TlsFiles, field: string, now: Date = new Date()): Promise<TlsMaterial> {
  const certField = `${field}.certFile`;
  const keyField = `${field}.keyFile`;
  const caField = `${field}.caFile`;
  const [cert, key, ca] = await Promise.all([
    readPem(files.certFile, certField),
    readPem(files.keyFile, keyField),
    files.caFile === undefined ? undefined : readPem(files.caFile, caField),
  ]);

  const certificate = parseCertificate(cert, files.certFile, certField);
  if (now < certificate.validFromDate) throw new ConfigError(certField, `the certificate in ${files.certFile} is not valid until ${certificate.validFromDate.toISOString()}`);
  if (now > certificate.validToDate) throw new ConfigError(certField, `the certificate in ${files.certFile} expired on ${certificate.validToDate.toISOString()}`);

  // PKCS#8 "ENCRYPTED PRIVATE KEY", or a traditional PEM key with "Proc-Type: 4,ENCRYPTED"
  if (key.includes('ENCRYPTED')) throw new ConfigError(keyField, `the key in ${files.keyFile} is encrypted; give an unencrypted key (no passphrase is asked)`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key, format: 'pem' });
  } catch (error) {
    throw new ConfigError(keyField, `${files.keyFile} holds no PEM private key${suffix(error)}`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new ConfigError(keyField, `the key in ${files.keyFile} does not match the certificate in ${files.certFile} (${certField})`);

  if (ca !== undefined && files.caFile !== undefined) {
    parseCertificate(ca, files.caFile, caField);
    try {
      createSecureContext({ ca });
    } catch (error) {
      throw new ConfigError(caField, `OpenSSL refuses the CA certificates in ${files.caFile}${suffix(error)}`);
    }
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    // the checks above catch the usual mistakes; this is what they miss (a key type OpenSSL
    // will not use in TLS, a chain in the wrong order)
    throw new ConfigError(certField, `OpenSSL refuses the certificate in ${files.certFile} with the key in ${files.keyFile}${suffix(error)}`);
  }
  return { cert, key, ca, notAfter: certificate.validToDate };
}

async function readPem(path: string, field: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new ConfigError(field, `cannot read ${path}: ${codeOf(error) ?? 'error'}`);
  }
  if (bytes.length === 0) throw new ConfigError(field, `${path} is empty`);
  return bytes;
}

/** The first certificate of a PEM file (X509Certificate reads only the first). */
function parseCertificate(pem: Buffer, path: string, field: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(field, `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new ConfigError(field, `${path} holds a certificate that cannot be read${suffix(error)}`);
  }
}

function codeOf(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** OpenSSL's error code, never its message (which may quote input). */
function suffix(error: unknown): string {
  const code = codeOf(error);
  return code ? ` (${code})` : '';
}
