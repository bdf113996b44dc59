/**
 * `issueServerCertificate` (HTTPS on 127.0.0.1 in development and tests) and
 * `certificateFingerprint` (how client-certificate credentials are keyed),
 * checked with the real openssl.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { certificateFingerprint, issueClientCertificate, issueServerCertificate } from '../../src/crypto/pki.ts';
import { tempDir, testPki } from '../helpers/backends.ts';

t.test('a server certificate for 127.0.0.1 and localhost, issued by the dev CA, fit for TLS servers', async (t) => {
  const dir = await tempDir(t);
  const pki = await testPki();
  const server = await issueServerCertificate({ caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], days: 7 });
  const cert = new X509Certificate(server.certPem);
  t.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  t.ok(cert.checkHost('localhost'));
  t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(server.keyPem)));
  t.ok(Math.abs(server.notAfter.getTime() - (Date.now() + 7 * 86400_000)) < 2 * 3600_000);
  await writeFile(path.join(dir, 'ca.pem'), pki.caCertPem);
  await writeFile(path.join(dir, 'server.pem'), server.certPem);
  const ok = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'sslserver', path.join(dir, 'server.pem')], { encoding: 'utf8' });
  t.equal(ok.status, 0, `${ok.stdout}${ok.stderr}`);
  const asClient = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'sslclient', path.join(dir, 'server.pem')], { encoding: 'utf8' });
  t.not(asClient.status, 0, 'not usable as a client certificate');
});

t.test('refuses what it cannot issue', async (t) => {
  const pki = await testPki();
  const base = { caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, days: 1 };
  await t.rejects(issueServerCertificate(base), /at least one DNS name or IP address/);
  await t.rejects(issueServerCertificate({ ...base, ipAddresses: ['localhost'] }), /not an IP address/);
  await t.rejects(issueServerCertificate({ ...base, ipAddresses: ['::1'], days: 0 }), /days/);
});

t.test('certificateFingerprint: SHA-256 of the DER, lowercase hex, from PEM or DER', async (t) => {
  const pki = await testPki();
  const client = await issueClientCertificate({ caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, commonName: 'x', days: 1 });
  const cert = new X509Certificate(client.certPem);
  const expected = cert.fingerprint256.replace(/:/g, '').toLowerCase();
  t.equal(certificateFingerprint(client.certPem), expected);
  t.equal(certificateFingerprint(cert.raw), expected);
  t.match(expected, /^[0-9a-f]{64}$/);
});
