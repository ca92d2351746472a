/**
 * Throwaway TLS material for tests, made at test time with the `openssl` command (Debian
 * package `openssl`) in a temporary folder that `remove()` deletes. No key is ever committed.
 *
 * The certificate is self-signed for `localhost` and 127.0.0.1 (subjectAltName), so it is its
 * own CA: give its path as `caFile` (or `ca`) to verify it.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether the `openssl` command is on PATH (the tests that need it skip, saying so, if not). */
export const hasOpenssl: boolean = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface TestCerts {
  readonly dir: string;
  /** Self-signed for CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1; valid two days. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A second key, not the certificate's. */
  readonly otherKeyFile: string;
  /** The right key, encrypted with a passphrase. */
  readonly encryptedKeyFile: string;
  /** A file with no PEM in it. */
  readonly garbageFile: string;
  /** An empty file. */
  readonly emptyFile: string;
  /** A second self-signed certificate and key, for a peer the first one does not vouch for. */
  readonly strangerCertFile: string;
  readonly strangerKeyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  remove(): void;
}

function selfSigned(dir: string, name: string, subject: string, san: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', subject, '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { certFile, keyFile };
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'hushpay-tls-'));
  const { certFile, keyFile } = selfSigned(dir, 'server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
  const stranger = selfSigned(dir, 'stranger', '/CN=stranger.invalid', 'DNS:stranger.invalid,IP:127.0.0.1');
  const otherKeyFile = join(dir, 'other-key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', otherKeyFile], { stdio: 'ignore' });
  const encryptedKeyFile = join(dir, 'encrypted-key.pem');
  execFileSync('openssl', ['pkey', '-in', keyFile, '-aes256', '-passout', 'pass:not-asked', '-out', encryptedKeyFile], { stdio: 'ignore' });
  const garbageFile = join(dir, 'garbage.pem');
  writeFileSync(garbageFile, 'this is not PEM\n');
  const emptyFile = join(dir, 'empty.pem');
  writeFileSync(emptyFile, '');
  return {
    dir,
    certFile,
    keyFile,
    otherKeyFile,
    encryptedKeyFile,
    garbageFile,
    emptyFile,
    strangerCertFile: stranger.certFile,
    strangerKeyFile: stranger.keyFile,
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
