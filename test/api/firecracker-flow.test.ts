// A Firecracker-style start, end to end: `tsvm run --api-sock PATH` with no guest, then a plain
// HTTP client configures it (boot-source, machine-config, drives) and sends
// InstanceStart; then pause/resume, 200 requests from concurrent clients while the guest prints
// its counter (all answered, the guest's output unbroken), and a stop through the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { counterNumbers, gapIn, http, sleep, start, tempRoot } from '../mgmt/mgmt-support.js';
import { checkResponse } from './openapi-check.js';

const noKvm = kvmUnavailableReason();

test('api: Firecracker-style configuration and InstanceStart over the socket; 200 concurrent requests while the guest runs', { skip: noKvm }, async () => {
  const root = tempRoot('fc');
  const counter = await assembleGuest('counter');
  const sock = join(root, 'fc.sock');
  const disk = join(root, 'rootfs.ext4');
  writeFileSync(disk, Buffer.alloc(64 * 1024));
  const vmm = start(root, ['run', '--api-sock', sock, '--name', 'fc1'], { timeoutMs: 60_000 });
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await http(sock, method, path, body);
    checkResponse(method, path, r.status, r.body);
    return r;
  };
  try {
    for (let i = 0; i < 800 && !existsSync(sock); i++) await sleep(25);
    let r = await call('GET', '/');
    assert.equal((r.body as { state: string }).state, 'Not started');
    // An action before any configuration.
    r = await call('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.equal(r.status, 400);
    assert.match((r.body as { fault_message: string }).fault_message, /no boot source/);
    // Bad requests: each a 400 that says what is wrong; the VMM keeps serving.
    const bad: [string, string, unknown, RegExp][] = [
      ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 16, hyperthreads: 2 }, /unknown field hyperthreads/],
      ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: '16' }, /mem_size_mib must be an integer, not the string "16"/],
      ['PUT', '/boot-source', { kernel_image_path: join(root, 'vmlinux-missing') }, /kernel_image_path: .*vmlinux-missing: no such file/],
      ['PATCH', '/vm', { state: 'Paused' }, /needs a running VM/],
    ];
    for (const [method, path, body, re] of bad) {
      r = await call(method, path, body);
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.match((r.body as { fault_message: string }).fault_message, re);
      assert.equal((await call('GET', '/')).status, 200);
    }

    assert.equal((await call('PUT', '/boot-source', { firmware_path: counter })).status, 204);
    assert.equal((await call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 16 })).status, 204);
    // tsvm's extension: this test is about KVM (vCPUs in their own threads while the API serves).
    assert.equal((await call('PATCH', '/machine-config', { accel: 'kvm' })).status, 204);
    assert.equal((await call('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: disk, is_root_device: true, is_read_only: false })).status, 204);
    r = await call('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.equal(r.status, 204, JSON.stringify(r.body));
    r = await call('GET', '/');
    assert.equal((r.body as { state: string }).state, 'Running');
    assert.equal((r.body as { accel: string }).accel, 'kvm');
    await vmm.waitFor(/\n5\n/, 10_000);
    // The drive is attached: its image was opened (and probed) for the guest's virtio-blk device.
    assert.match(vmm.stderr(), /disk "rootfs": .*rootfs\.ext4/);
    // The runtime directory holds the configuration the guest booted with.
    const cfg = (await call('GET', '/vm/config')).body;
    assert.deepEqual(JSON.parse(readFileSync(join(root, 'fc1', 'config.json'), 'utf8')), cfg);

    // After the start: pre-boot resources and a second start are refused; the guest runs on.
    r = await call('PUT', '/boot-source', { firmware_path: counter });
    assert.equal(r.status, 400);
    assert.match((r.body as { fault_message: string }).fault_message, /cannot be changed after InstanceStart/);
    r = await call('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.equal(r.status, 400);
    assert.match((r.body as { fault_message: string }).fault_message, /already been started/);

    // Pause and resume.
    assert.equal((await call('PATCH', '/vm', { state: 'Paused' })).status, 204);
    assert.equal(((await call('GET', '/')).body as { state: string }).state, 'Paused');
    // Output already on its way (an exit in flight, the pipe) arrives; then nothing more.
    let frozen = -1;
    for (let i = 0; i < 25 && vmm.stdout().length !== frozen; i++) {
      frozen = vmm.stdout().length;
      await sleep(150);
    }
    await sleep(300); // 15 lines' worth of the counter's time
    assert.equal(vmm.stdout().length, frozen, 'a paused guest prints nothing');
    assert.equal((await call('PATCH', '/vm', { state: 'Resumed' })).status, 204);
    assert.equal(((await call('GET', '/')).body as { state: string }).state, 'Running');

    // 200 requests from 20 concurrent clients (a connection each) while the guest prints.
    const before = counterNumbers(vmm.stdout()).at(-1)!;
    const requests: [string, string, unknown?][] = [
      ['GET', '/'], ['GET', '/metrics'], ['GET', '/machine-config'], ['GET', '/vm/config'], ['GET', '/version'],
      ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 16 }], // 400: after the start
      ['PUT', '/drives/x', { drive_id: 'x', path_on_host: disk, is_root_device: false, bogus: 1 }], // 400: unknown field
      ['GET', '/nowhere'], // 404
    ];
    const statuses: number[] = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, async (_c, client) => {
      for (let i = 0; i < 10; i++) {
        const [method, path, body] = requests[(client + i) % requests.length];
        const res = await call(method, path, body);
        statuses.push(res.status);
      }
    }));
    const ms = performance.now() - t0;
    assert.equal(statuses.length, 200, 'every request answered');
    assert.deepEqual([...new Set(statuses)].sort(), [200, 400, 404]);
    await sleep(100);
    const nums = counterNumbers(vmm.stdout());
    assert.ok(nums.at(-1)! > before, 'the guest kept printing');
    assert.equal(gapIn(nums), undefined, `the guest's output has a gap: ${gapIn(nums)}`);
    const m = (await call('GET', '/metrics')).body as { api: { requests: number }; vcpu: { exits: number }; devices: { uart: { writes: number } }; virtio: Record<string, Record<string, number>> };
    assert.ok(m.api.requests > 200);
    assert.equal(typeof m.virtio['virtio-blk-rootfs']?.reads, 'number', JSON.stringify(m.virtio));
    assert.ok(m.vcpu.exits > 0 && m.devices.uart.writes > 0);
    assert.ok(ms < 30_000, `200 requests took ${Math.round(ms)} ms`);

    // SendCtrlAltDel: the counter guest does not listen to the power button; it keeps running.
    assert.equal((await call('PUT', '/actions', { action_type: 'SendCtrlAltDel' })).status, 204);
    assert.equal(((await call('GET', '/')).body as { state: string }).state, 'Running');
    // Stop: the VMM answers, stops the guest and exits; its sockets and directory go with it.
    assert.equal((await call('PUT', '/actions', { action_type: 'Stop' })).status, 204);
    const res = await vmm.result;
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stderr, /stopped through the API/);
    assert.equal(existsSync(join(root, 'fc1')), false, 'the runtime directory is removed');
    assert.equal(existsSync(sock), false, 'the API socket is removed');
  } finally {
    vmm.child.kill('SIGKILL');
    await vmm.result;
  }
});
