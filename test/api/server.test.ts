// The API server before any guest runs (no KVM needed): a VmInstance in this process, driven with
// a plain HTTP client over its Unix socket. Configuration requests, and every kind of bad request
// (unknown field, wrong type, missing file, wrong id, wrong state, unknown path or method, bad
// JSON), each answered with the documented status and a fault message that names the problem;
// the server keeps serving after each. Every answer is checked against docs/openapi.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmInstance } from '../../src/vmm/runtime-instance.js';
import { defaultConfig } from '../../src/vmm/vm-config.js';
import { http, tempRoot } from '../mgmt/mgmt-support.js';
import { checkResponse } from './openapi-check.js';

async function withInstance(fn: (call: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: unknown }>, inst: VmInstance, dir: string) => Promise<void>) {
  const root = tempRoot('api');
  const logs: string[] = [];
  const inst = new VmInstance({ config: { ...defaultConfig(), name: 'api-test' }, log: (l) => logs.push(l), version: '0.1.0', runtimeRoot: root });
  await inst.open();
  const sock = inst.apiSocket!;
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await http(sock, method, path, body);
    checkResponse(method, path, r.status, r.body);
    return r;
  };
  try {
    await fn(call, inst, root);
  } finally {
    await inst.close();
  }
}

function fault(r: { body: unknown }): string {
  return (r.body as { fault_message: string }).fault_message;
}

test('api: configuration before InstanceStart: PUTs answer 204, GETs show what was set', async () => {
  await withInstance(async (call, _inst, dir) => {
    const kernel = join(dir, 'vmlinux');
    const disk = join(dir, 'rootfs.ext4');
    writeFileSync(kernel, 'not really a kernel');
    writeFileSync(disk, Buffer.alloc(4096));

    let r = await call('GET', '/');
    assert.equal(r.status, 200);
    assert.deepEqual({ ...(r.body as object), pid: 0, uptime_ms: 0, api_socket: '', console_socket: '', runtime_dir: '' }, {
      app_name: 'tsvm', id: 'api-test', state: 'Not started', vmm_version: '0.1.0', pid: 0, vcpu_count: 1, mem_size_mib: 512, uptime_ms: 0,
      api_socket: '', console_socket: '', runtime_dir: '',
    });
    r = await call('GET', '/machine-config');
    assert.deepEqual(r.body, { vcpu_count: 1, mem_size_mib: 512, smt: false, track_dirty_pages: false, huge_pages: 'None', cpu_template: 'None', accel: 'auto', irqchip: true, no_reboot: false, testdev: false, console: 'serial' });

    assert.equal((await call('PUT', '/boot-source', { kernel_image_path: kernel, boot_args: 'console=ttyS0 quiet' })).status, 204);
    assert.equal((await call('PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256 })).status, 204);
    assert.equal((await call('PATCH', '/machine-config', { accel: 'kvm' })).status, 204);
    assert.equal((await call('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: disk, is_root_device: true, is_read_only: false })).status, 204);
    assert.equal((await call('PUT', '/drives/data', { drive_id: 'data', path_on_host: disk, is_root_device: false, is_read_only: true, format: 'raw' })).status, 204);
    assert.equal((await call('PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '02:FC:00:00:00:05' })).status, 204);
    // PUT replaces: the same id again updates the entry.
    assert.equal((await call('PUT', '/drives/data', { drive_id: 'data', path_on_host: disk, is_root_device: false })).status, 204);

    r = await call('GET', '/vm/config');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      'boot-source': { kernel_image_path: kernel, boot_args: 'console=ttyS0 quiet', boot_mode: 'elf' },
      'machine-config': { vcpu_count: 2, mem_size_mib: 256, smt: false, track_dirty_pages: false, huge_pages: 'None', cpu_template: 'None', accel: 'kvm', irqchip: true, no_reboot: false, testdev: false, console: 'serial' },
      drives: [
        { drive_id: 'rootfs', path_on_host: disk, is_root_device: true, is_read_only: false },
        { drive_id: 'data', path_on_host: disk, is_root_device: false, is_read_only: false },
      ],
      'network-interfaces': [{ iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '02:fc:00:00:00:05' }],
      tsvm: { name: 'api-test', shutdown_grace_s: 10 },
    });
    // PUT /machine-config resets what it leaves out (as Firecracker's does); PATCH keeps it.
    assert.equal((await call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64 })).status, 204);
    assert.equal(((await call('GET', '/machine-config')).body as { accel: string }).accel, 'auto');
    // console: virtio; a boot-source without boot_args gets console=hvc0, whichever came first.
    assert.equal((await call('PUT', '/boot-source', { kernel_image_path: kernel })).status, 204);
    assert.equal((await call('PATCH', '/machine-config', { console: 'virtio' })).status, 204);
    r = await call('GET', '/vm/config');
    assert.equal((r.body as { 'boot-source': { boot_args: string } })['boot-source'].boot_args, 'console=hvc0');
    assert.equal((r.body as { 'machine-config': { console: string } })['machine-config'].console, 'virtio');
    assert.equal((await call('PATCH', '/machine-config', { console: 'hvc0' })).status, 400);

    r = await call('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.ok((r.body as { api: { requests: number } }).api.requests >= 10);
    r = await call('GET', '/version');
    assert.equal((r.body as { firecracker_version: string }).firecracker_version, '0.1.0');
  });
});

test('api: bad requests get 400 (or 404/405/413) with a fault message that names the problem, and the VMM keeps serving', async () => {
  await withInstance(async (call, _inst, dir) => {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(512));
    const cases: { method: string; path: string; body?: unknown; status: number; message: RegExp }[] = [
      { method: 'PUT', path: '/machine-config', body: { vcpu_count: 1, mem_size_mib: 64, turbo: true }, status: 400, message: /unknown field turbo \(known fields: vcpu_count, mem_size_mib/ },
      { method: 'PUT', path: '/machine-config', body: { vcpu_count: 'two', mem_size_mib: 64 }, status: 400, message: /vcpu_count must be an integer, not the string "two"/ },
      { method: 'PUT', path: '/machine-config', body: { vcpu_count: 0, mem_size_mib: 64 }, status: 400, message: /vcpu_count must be at least 1/ },
      { method: 'PUT', path: '/machine-config', body: { mem_size_mib: 64 }, status: 400, message: /missing field vcpu_count/ },
      { method: 'PUT', path: '/machine-config', body: { vcpu_count: 2, mem_size_mib: 64, smt: true }, status: 400, message: /smt: tsvm does not support SMT/ },
      { method: 'PUT', path: '/boot-source', body: { kernel_image_path: join(dir, 'no-such-vmlinux') }, status: 400, message: /kernel_image_path: .*no-such-vmlinux: no such file/ },
      { method: 'PUT', path: '/boot-source', body: { boot_args: 'console=ttyS0' }, status: 400, message: /missing field kernel_image_path/ },
      { method: 'PUT', path: '/boot-source', body: { kernel_image_path: 42 }, status: 400, message: /kernel_image_path must be a string, not the integer 42/ },
      { method: 'PUT', path: '/drives/rootfs', body: { drive_id: 'rootfs', path_on_host: join(dir, 'nope.ext4'), is_root_device: true }, status: 400, message: /path_on_host: .*nope\.ext4: no such file/ },
      { method: 'PUT', path: '/drives/rootfs', body: { drive_id: 'other', path_on_host: disk, is_root_device: true }, status: 400, message: /drive_id in the path \("rootfs"\) and in the body \("other"\) differ/ },
      { method: 'PUT', path: '/drives/rootfs', body: { drive_id: 'rootfs', path_on_host: disk, is_root_device: true, rate_limiter: {} }, status: 400, message: /unknown field rate_limiter/ },
      { method: 'PUT', path: '/network-interfaces/eth0', body: { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: 'nonsense' }, status: 400, message: /guest_mac .*does not have the expected form/ },
      { method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' }, status: 400, message: /no boot source yet: PUT \/boot-source/ },
      { method: 'PUT', path: '/actions', body: { action_type: 'SendCtrlAltDel' }, status: 400, message: /needs a running VM/ },
      { method: 'PUT', path: '/actions', body: { action_type: 'Reboot' }, status: 400, message: /action_type must be one of "InstanceStart", "SendCtrlAltDel"/ },
      { method: 'PATCH', path: '/vm', body: { state: 'Paused' }, status: 400, message: /needs a running VM/ },
      { method: 'PATCH', path: '/vm', body: { state: 'Asleep' }, status: 400, message: /state must be one of "Paused", "Resumed"/ },
      { method: 'PUT', path: '/machine-config', body: '{"vcpu_count": 1,', status: 400, message: /not valid JSON/ },
      { method: 'PUT', path: '/machine-config', body: '', status: 400, message: /needs a JSON body/ },
      { method: 'PUT', path: '/machine-config', body: '[1, 2]', status: 400, message: /the body must be an object, not an array/ },
      { method: 'PUT', path: '/machine-config', body: JSON.stringify({ vcpu_count: 1, mem_size_mib: 64, pad: 'x'.repeat(70_000) }), status: 413, message: /larger than 65536 bytes/ },
      { method: 'GET', path: '/balloon', status: 404, message: /no such path: \/balloon/ },
      { method: 'DELETE', path: '/machine-config', status: 405, message: /DELETE is not supported on \/machine-config; use GET or PUT or PATCH/ },
    ];
    for (const c of cases) {
      const r = await call(c.method, c.path, c.body);
      assert.equal(r.status, c.status, `${c.method} ${c.path} ${JSON.stringify(c.body)?.slice(0, 100)}: ${JSON.stringify(r.body)}`);
      assert.match(fault(r), c.message, `${c.method} ${c.path}`);
      // Still serving, and nothing changed.
      const info = await call('GET', '/');
      assert.equal(info.status, 200);
      assert.equal((info.body as { state: string }).state, 'Not started');
    }
    const cfg = (await call('GET', '/vm/config')).body as { drives: unknown[]; 'boot-source'?: unknown; 'machine-config': { vcpu_count: number } };
    assert.deepEqual(cfg.drives, []);
    assert.equal(cfg['boot-source'], undefined);
    assert.equal(cfg['machine-config'].vcpu_count, 1);
    const m = (await call('GET', '/metrics')).body as { api: { requests: number; errors: number } };
    assert.equal(m.api.errors, cases.length);
  });
});

test('api: docs/openapi.json is consistent: references resolve, path parameters are declared, errors documented', async () => {
  const { openApi } = await import('./openapi-check.js');
  const refs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string') refs.push(x);
        else walk(x);
      }
    }
  };
  walk(openApi);
  for (const r of refs) {
    const m = /^#\/components\/schemas\/(.+)$/.exec(r);
    assert.ok(m && openApi.components.schemas[m[1]], `unresolved $ref ${r}`);
  }
  for (const [path, ops] of Object.entries(openApi.paths)) {
    const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(op.responses.default, `${method} ${path}: no default (error) response`);
      const declared = ((op as { parameters?: { name: string; in: string }[] }).parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      assert.deepEqual(declared, params, `${method} ${path}: path parameters`);
      if (method === 'put' || method === 'patch') assert.ok(op.requestBody && op.responses['204'] && op.responses['400'], `${method} ${path}: body, 204 and 400`);
    }
  }
});

test('api: an InstanceStart that fails (a drive image that cannot be opened) is a 400; the VM can still be fixed and started later', async () => {
  await withInstance(async (call, inst, dir) => {
    const fw = join(dir, 'fw.bin');
    writeFileSync(fw, Buffer.alloc(64 * 1024));
    const disk = join(dir, 'not-qcow2.img');
    writeFileSync(disk, Buffer.alloc(64 * 1024));
    assert.equal((await call('PUT', '/boot-source', { firmware_path: fw })).status, 204);
    assert.equal((await call('PUT', '/drives/d0', { drive_id: 'd0', path_on_host: disk, is_root_device: false, format: 'qcow2' })).status, 204);
    const r = await call('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.equal(r.status, 400);
    assert.match(fault(r), /^InstanceStart: the VM could not start: .*not-qcow2\.img/);
    assert.equal(((await call('GET', '/')).body as { state: string }).state, 'Not started');
    // Still configurable: the drive can be corrected.
    assert.equal((await call('PUT', '/drives/d0', { drive_id: 'd0', path_on_host: disk, is_root_device: false, format: 'raw' })).status, 204);
    assert.equal(inst.instanceState(), 'Not started');
  });
});
