// `tsvm console NAME`: attach this terminal to a running VM's serial console (its console.sock,
// raw bytes both ways; see src/vmm/runtime-console.ts), detach with Ctrl-] and the VM keeps
// running. With stdin a pipe, the end of the input detaches. Detaching is clean: we shut down
// our sending side and print everything the VM sends until it closes the connection, so no
// output produced while we were attached is lost.
import { connect } from 'node:net';
import { findVm } from '../vmm/runtime-dir.js';
import { ConfigError } from '../vmm/vm-config.js';
import { nameArgument } from './manage-commands.js';
import { CONSOLE_USAGE } from './usage.js';

const ESCAPE = 0x1d; // Ctrl-]

interface TtyIn {
  isTTY?: boolean;
  setRawMode?: (raw: boolean) => unknown;
}

export async function consoleCommand(argv: string[]): Promise<number> {
  const a = nameArgument('console', argv, {}, CONSOLE_USAGE);
  if (!a) return 0;
  const e = findVm(a.name);
  const stdin = process.stdin as NodeJS.ReadStream & TtyIn;
  const tty = stdin.isTTY === true && typeof stdin.setRawMode === 'function';

  const sock = connect({ path: e.info.consoleSocket, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (err) => reject(new ConfigError(`${a.name}: cannot attach to its console: ${err.message}`)));
  });
  process.stderr.write(`tsvm: attached to ${a.name}'s console; ${tty ? 'Ctrl-]' : 'the end of input'} detaches (the VM keeps running)\r\n`);

  let detaching = false;
  const detach = () => {
    if (detaching) return;
    detaching = true;
    stdin.removeListener('data', onData);
    stdin.pause();
    sock.end(); // FIN: the VM stops sending to us, finishes and closes; we print until then
  };
  const onData = (d: Buffer) => {
    if (!tty) {
      sock.write(d);
      return;
    }
    const i = d.indexOf(ESCAPE);
    if (i < 0) {
      sock.write(d);
      return;
    }
    if (i > 0) sock.write(d.subarray(0, i));
    detach();
  };
  if (tty) stdin.setRawMode!(true);
  const restore = () => { if (tty) stdin.setRawMode!(false); };
  process.on('exit', restore);
  stdin.on('data', onData);
  stdin.on('end', detach);
  stdin.on('error', detach);

  // Our reader went away (a closed pipe): detach cleanly rather than die.
  process.stdout.on('error', detach);
  sock.on('data', (d: Buffer) => process.stdout.write(d));
  await new Promise<void>((resolve) => {
    sock.on('end', resolve);
    sock.on('close', () => resolve());
    sock.on('error', () => resolve());
  });
  sock.destroy();
  restore();
  process.stderr.write(detaching ? `\r\ntsvm: detached from ${a.name}\r\n` : `\r\ntsvm: ${a.name}'s console closed (the VM stopped)\r\n`);
  stdin.pause();
  return 0;
}
