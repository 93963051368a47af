import { chmod, chown, link } from 'node:fs/promises';
import { runCommand } from '../core/run-command.ts';
import { oldAccounts, sshHostKeyTypes } from './demo-layout.ts';
import { inTree, putDir, putFile, putSymlink } from './demo-root.ts';

export interface OldIdentityFacts {
  /** Key file name (ssh_host_ed25519_key …) -> "SHA256:…" exactly as `ssh-keygen -lf` prints it. */
  readonly sshHostKeySha256: Record<string, string>;
  /** The retained top-level paths that exist in the old root, with the SSH glob expanded, sorted. */
  readonly retainedPaths: readonly string[];
}

function idsOf(name: string): { uid: number; gid: number } {
  const account = oldAccounts.accounts.find((a) => a.name === name);
  return { uid: account?.uid ?? 0, gid: account?.gid ?? 0 };
}

function gidOf(name: string): number {
  return oldAccounts.groups.find((g) => g.name === name)?.gid ?? 0;
}

/**
 * Gives the old root its state worth keeping: SSH host keys from ssh-keygen, a TLS key and
 * self-signed certificate from openssl (the key readable by kiosk through a POSIX ACL), the
 * kiosk configuration directory (modes, a name with a space, same-basename files, a symlink, a
 * hard link, a `user.*` xattr), kiosk state, and a program with a file capability.
 */
export async function populateOldIdentity(rootDir: string, signal?: AbortSignal): Promise<OldIdentityFacts> {
  const kiosk = idsOf('kiosk');
  await putDir(rootDir, 'etc/ssh', { mode: 0o755 });
  const sshHostKeySha256: Record<string, string> = {};
  const sshKeyPaths: string[] = [];
  for (const { type, bits } of sshHostKeyTypes) {
    const name = `ssh_host_${type}_key`;
    const path = inTree(rootDir, `etc/ssh/${name}`);
    const bitsArgs = bits === undefined ? [] : ['-b', String(bits)];
    await runCommand('ssh-keygen', ['-q', '-t', type, ...bitsArgs, '-N', '', '-C', `root@kiosk-0042`, '-f', path], {
      signal,
    });
    const { stdout } = await runCommand('ssh-keygen', ['-l', '-f', `${path}.pub`], { signal });
    const fingerprint = stdout.split(' ')[1] ?? '';
    sshHostKeySha256[name] = fingerprint;
    sshKeyPaths.push(`/etc/ssh/${name}`, `/etc/ssh/${name}.pub`);
  }

  const sslCert = gidOf('ssl-cert');
  await putDir(rootDir, 'etc/pki/tls/certs', { mode: 0o755 });
  await putDir(rootDir, 'etc/pki/tls/private', { mode: 0o710, gid: sslCert });
  const keyPath = inTree(rootDir, 'etc/pki/tls/private/kiosk.key');
  const certPath = inTree(rootDir, 'etc/pki/tls/certs/kiosk.crt');
  await runCommand(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '3650',
      '-subj',
      '/CN=kiosk-0042.demo.invalid',
    ],
    { signal },
  );
  await chown(keyPath, 0, sslCert);
  await chmod(keyPath, 0o640);
  await chmod(certPath, 0o644);
  await runCommand('setfacl', ['-m', `u:${kiosk.uid}:r`, keyPath], { signal });

  await putDir(rootDir, 'etc/kiosk', { mode: 0o750, ...kiosk });
  await putFile(rootDir, 'etc/kiosk/kiosk.conf', 'url=https://signage.demo.invalid/screen/42\nrotate=90\n', {
    mode: 0o640,
    ...kiosk,
  });
  await runCommand('setfattr', [
    '-n',
    'user.kiosk.role',
    '-v',
    'lobby-screen',
    inTree(rootDir, 'etc/kiosk/kiosk.conf'),
  ]);
  await putFile(rootDir, 'etc/kiosk/screen layout.conf', 'columns=2\nrows=1\n', { mode: 0o644, ...kiosk });
  await putFile(rootDir, 'etc/kiosk/a/settings.conf', 'volume=3\n', { mode: 0o644, ...kiosk });
  await putFile(rootDir, 'etc/kiosk/b/settings.conf', 'volume=7\n', { mode: 0o600, uid: 0, gid: kiosk.gid });
  await putDir(rootDir, 'etc/kiosk/profiles/default', { mode: 0o755, ...kiosk });
  await putFile(rootDir, 'etc/kiosk/profiles/default/start-page', 'https://signage.demo.invalid/\n', {
    mode: 0o644,
    ...kiosk,
  });
  await putSymlink(rootDir, 'etc/kiosk/current', 'profiles/default', kiosk);
  await putDir(rootDir, 'etc/kiosk/secrets', { mode: 0o700, ...kiosk });
  await putFile(rootDir, 'etc/kiosk/secrets/enrolment.token', 'tok_5f1e0c2a9b7d4e38\n', { mode: 0o600, ...kiosk });
  await link(inTree(rootDir, 'etc/kiosk/secrets/enrolment.token'), inTree(rootDir, 'etc/kiosk/enrolment.token'));

  await putDir(rootDir, 'var/lib/kiosk', { mode: 0o700, ...kiosk });
  await putFile(rootDir, 'var/lib/kiosk/state.json', '{"playlistVersion":17,"lastSync":"2026-11-20T08:00:00Z"}\n', {
    mode: 0o600,
    ...kiosk,
  });
  await putDir(rootDir, 'home/kiosk', { mode: 0o750, ...kiosk });

  await putFile(rootDir, 'usr/local/bin/kiosk-agent', '#!/bin/sh\necho "kiosk agent (demo)"\n', { mode: 0o755 });
  await runCommand('setcap', ['cap_net_bind_service=+ep', inTree(rootDir, 'usr/local/bin/kiosk-agent')], { signal });

  const retainedPaths = [
    '/etc/machine-id',
    '/etc/hostname',
    ...sshKeyPaths,
    '/etc/pki/tls/private',
    '/etc/pki/tls/certs/kiosk.crt',
    '/etc/kiosk',
    '/var/lib/kiosk',
    '/usr/local/bin/kiosk-agent',
  ].sort();
  return { sshHostKeySha256, retainedPaths };
}
