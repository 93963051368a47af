import { identityBeginMarker, identityEndMarker } from './demo-layout.ts';

/** One retained entry as the booted OS sees it: `stat` of the path inside that OS. */
export interface ReportedEntry {
  /** Permission bits as octal text, e.g. "640". */
  readonly mode: string;
  readonly uid: number;
  readonly gid: number;
  /** "regular file", "directory", "symbolic link", … as busybox `stat %F` prints. */
  readonly kind: string;
  readonly path: string;
}

/** What a demo OS printed about itself on the serial console at boot. */
export interface IdentityReport {
  readonly osVersion: string;
  readonly prettyName: string;
  readonly machineId: string;
  /** Key file name (e.g. ssh_host_ed25519_key) -> "SHA256:…" as `ssh-keygen -lf` prints it. */
  readonly sshHostKeySha256: Record<string, string>;
  readonly entries: readonly ReportedEntry[];
  /** Whether /kiosk/log/report.json existed in the booted OS. */
  readonly reportJsonPresent: boolean;
}

/**
 * The demo OSes' /sbin/init (busybox sh). It runs /etc/rc.local when there is one (the operator's
 * commands: `reimage arm --reboot` from the running OS), then prints the identity block and powers
 * off, so a test or the demo reads the OS's own view of its identity from the serial console. The SSH
 * fingerprints are computed as ssh-keygen does: base64 (unpadded) of the SHA-256 of the key blob.
 */
export function identityInitScript(): string {
  return `#!/bin/sh
# reimage demo: print this OS's identity on the console, then power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
# /dev first: until it is mounted, even a "2>/dev/null" fails (and skips its command).
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The operator's commands, run as a classic init runs /etc/rc.local (the demo puts one there, as
# the operator's scp would: the reimage runtime, the plan, reimage arm --reboot).
if [ -x /etc/rc.local ]; then
  mount -o remount,rw /
  # What busybox init does on "reboot" (SIGTERM to PID 1): sync, then restart the machine.
  trap 'echo "reimage-demo init: rebooting"; sync; reboot -f' TERM
  echo 'reimage-demo init: running /etc/rc.local'
  /etc/rc.local
  echo "reimage-demo init: /etc/rc.local exited $?"
  mount -o remount,ro /
fi
. /etc/os-release
echo '${identityBeginMarker}'
echo "os-version: $VERSION_ID"
echo "os-name: $PRETTY_NAME"
echo "machine-id: $(cat /etc/machine-id 2>/dev/null)"
for pub in /etc/ssh/ssh_host_*_key.pub; do
  [ -f "$pub" ] || continue
  fp=$(cut -d' ' -f2 "$pub" | base64 -d | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 | tr -d '=\\n')
  echo "ssh-host-key: $(basename "$pub" .pub) SHA256:$fp"
done
while IFS= read -r top; do
  [ -e "$top" ] || [ -L "$top" ] || continue
  find "$top" | sort | while IFS= read -r path; do
    stat -c 'entry: %a %u %g %F|%n' "$path"
  done
done < /etc/reimage-demo/report-paths
if [ -f /kiosk/log/report.json ]; then echo 'report-json: present'; else echo 'report-json: absent'; fi
echo '${identityEndMarker}'
sync
poweroff -f
`;
}

/**
 * Finds the last identity block in a serial log and parses it. Returns undefined when no complete
 * block is there (the OS did not boot far enough). Tolerates the CR and kernel messages a serial
 * console mixes in around the block.
 */
export function parseIdentityReport(serialLog: string): IdentityReport | undefined {
  const begin = serialLog.lastIndexOf(identityBeginMarker);
  if (begin < 0) return undefined;
  const end = serialLog.indexOf(identityEndMarker, begin);
  if (end < 0) return undefined;
  const lines = serialLog
    .slice(begin + identityBeginMarker.length, end)
    .split('\n')
    .map((line) => line.replace(/\r$/, ''));
  let osVersion = '';
  let prettyName = '';
  let machineId = '';
  let reportJsonPresent = false;
  const sshHostKeySha256: Record<string, string> = {};
  const entries: ReportedEntry[] = [];
  for (const line of lines) {
    const field = /^([a-z-]+): (.*)$/.exec(line);
    if (field === null) continue;
    const [, key, value = ''] = field;
    if (key === 'os-version') osVersion = value;
    else if (key === 'os-name') prettyName = value;
    else if (key === 'machine-id') machineId = value;
    else if (key === 'report-json') reportJsonPresent = value === 'present';
    else if (key === 'ssh-host-key') {
      const match = /^(\S+) (SHA256:\S+)$/.exec(value);
      if (match?.[1] !== undefined && match[2] !== undefined) sshHostKeySha256[match[1]] = match[2];
    } else if (key === 'entry') {
      const match = /^([0-7]+) (\d+) (\d+) ([^|]+)\|(.*)$/.exec(value);
      if (match === null) continue;
      const [, mode = '', uid = '', gid = '', kind = '', path = ''] = match;
      entries.push({ mode, uid: Number(uid), gid: Number(gid), kind, path });
    }
  }
  return { osVersion, prettyName, machineId, sshHostKeySha256, entries, reportJsonPresent };
}
