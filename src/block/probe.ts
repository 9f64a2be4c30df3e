// Format probing: a file that starts with the qcow2 magic ("Header", bytes 0-3) is qcow2,
// anything else raw. See open.ts for the safety rule that goes with guessing.
import { open as fsOpen } from 'node:fs/promises';
import type { DiskFormat } from './backend.js';
import { fsError } from './errors.js';
import { hasQcow2Magic } from './qcow2/header.js';

/** 'qcow2' when the file starts with the qcow2 magic, else 'raw'. */
export async function probeFormat(path: string): Promise<DiskFormat> {
  let fh;
  try {
    fh = await fsOpen(path, 'r');
  } catch (e) {
    throw fsError(e, path, 'cannot open');
  }
  try {
    const b = new Uint8Array(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && hasQcow2Magic(b) ? 'qcow2' : 'raw';
  } catch (e) {
    throw fsError(e, path, 'cannot read');
  } finally {
    await fh.close();
  }
}
