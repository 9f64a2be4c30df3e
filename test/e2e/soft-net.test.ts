// virtio-net end to end under the software CPU: a TAP device in a network namespace that the
// test creates (traffic never leaves it), the stock Debian kernel with virtio_net from the
// initramfs, ping from the guest to the host side, and HTTP transfers both ways whose bytes are
// checked by SHA-256 on both ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findDefaultGuest } from '../support/guests.js';
import { TSVM_BIN } from '../support/tsvm-process.js';

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const unavailable = process.getuid?.() !== 0
  ? 'network namespaces and TAP devices need root'
  : !IP ? 'iproute2 (ip) is not installed'
    : !existsSync('/dev/net/tun') ? '/dev/net/tun does not exist' : undefined;

// TEST-NET-1 addresses, only ever inside the test's own namespace.
const HOST_IP = '192.0.2.1';
const GUEST_IP = '192.0.2.2';
const TAP = 'tsvmtap0';
const PORT = 8080;

test('soft: the guest reaches the host over TAP: ping, and HTTP transfers both ways, byte for byte', { skip: unavailable, timeout: 600_000 }, async () => {
  const guest = await findDefaultGuest();
  const ns = `tsvm-net-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-net-'));
  const ip = (...args: string[]) => execFileSync(IP!, args, { stdio: 'pipe' });
  const inNs = (...args: string[]) => execFileSync(IP!, ['netns', 'exec', ns, ...args], { stdio: 'pipe' });
  ip('netns', 'add', ns);
  const children: ReturnType<typeof spawn>[] = [];
  try {
    inNs(IP!, 'link', 'set', 'lo', 'up');
    inNs(IP!, 'tuntap', 'add', 'dev', TAP, 'mode', 'tap');
    inNs(IP!, 'addr', 'add', `${HOST_IP}/24`, 'dev', TAP);
    inNs(IP!, 'link', 'set', TAP, 'up');

    // The host side: an HTTP server in the namespace. GET /download serves 1 MiB of random bytes;
    // POST /upload answers with the SHA-256 of what it received.
    const download = randomBytes(1 << 20);
    const downloadSum = createHash('sha256').update(download).digest('hex');
    writeFileSync(join(dir, 'download.bin'), download);
    const server = `
      const http = require('node:http'); const fs = require('node:fs'); const crypto = require('node:crypto');
      const data = fs.readFileSync(${JSON.stringify(join(dir, 'download.bin'))});
      http.createServer((req, res) => {
        if (req.method === 'GET') { res.setHeader('content-length', data.length); res.end(data); return; }
        const h = crypto.createHash('sha256'); let n = 0;
        req.on('data', (c) => { h.update(c); n += c.length; });
        req.on('end', () => { const d = h.digest('hex'); console.log('upload ' + n + ' ' + d); res.end('upload-sha256 ' + d + '\\n'); });
      }).listen(${PORT}, ${JSON.stringify(HOST_IP)}, () => console.log('listening'));`;
    const srv = spawn(IP!, ['netns', 'exec', ns, process.execPath, '-e', server], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(srv);
    let srvOut = '';
    srv.stdout!.setEncoding('utf8').on('data', (d: string) => { srvOut += d; });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error('HTTP server did not start')), 10_000);
      srv.stdout!.on('data', () => { if (srvOut.includes('listening')) { clearTimeout(t); res(); } });
    });

    const script = [
      `ip link set eth0 up`,
      `ip addr add ${GUEST_IP}/24 dev eth0`,
      `ping -c 3 -W 5 ${HOST_IP}`,
      // busybox wget posts a file as a C string (it stops at the first NUL): send base64 text.
      `dd if=/dev/urandom bs=4096 count=128 2>/dev/null | base64 > /tmp/up.b64`,
      `sha256sum /tmp/up.b64`,
      `wc -c < /tmp/up.b64`,
      `wget -q -O - --post-file=/tmp/up.b64 http://${HOST_IP}:${PORT}/upload`,
      `wget -q -O /tmp/down.bin http://${HOST_IP}:${PORT}/download`,
      `sha256sum /tmp/down.bin`,
      `echo guest-net-done`,
    ].join('\n');
    const vm = spawn(IP!, ['netns', 'exec', ns, process.execPath, TSVM_BIN, 'run', '--accel', 'soft',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M', '--net', TAP,
      '--append', `console=ttyS0 panic=-1 tsvm.run64=${Buffer.from(script).toString('base64')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(vm);
    let out = '';
    let err = '';
    vm.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    vm.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const status = await new Promise<number | null>((res) => {
      const t = setTimeout(() => vm.kill('SIGKILL'), 480_000);
      vm.on('close', (code) => { clearTimeout(t); res(code); });
    });
    const context = `stderr:\n${err}\nconsole tail:\n${out.slice(-3000)}`;
    assert.equal(status, 0, context);
    assert.match(out, /guest-net-done/, context);
    assert.match(out, /3 packets transmitted, 3 packets received/, context);
    const upSum = /([0-9a-f]{64})\s+\/tmp\/up\.b64/.exec(out)?.[1];
    assert.ok(upSum, context);
    assert.match(out, new RegExp(`upload-sha256 ${upSum}`), 'the host received exactly the bytes the guest sent');
    const upBytes = Math.ceil((128 * 4096) / 3) * 4 + Math.ceil(Math.ceil((128 * 4096) / 3) * 4 / 76); // base64 + newlines
    assert.match(srvOut, new RegExp(`upload ${upBytes} ${upSum}`));
    assert.match(out, new RegExp(`${downloadSum}\\s+/tmp/down\\.bin`), 'the guest received exactly the bytes the host sent');
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    try { ip('netns', 'delete', ns); } catch { /* already gone */ }
    rmSync(dir, { recursive: true, force: true });
  }
});
