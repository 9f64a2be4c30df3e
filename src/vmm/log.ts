// VMM messages go to stderr, one line each, prefixed "tsvm:"; the guest's console owns stdout.
export type Logger = (line: string) => void;

export const stderrLogger: Logger = (line) => {
  process.stderr.write(`tsvm: ${line}\n`);
};

export const silentLogger: Logger = () => {};

/**
 * Debug lines (which fast path a device took, and the like) through `log`, prefixed "debug:",
 * when the environment variable TSVM_DEBUG is set to anything but "" or "0"; otherwise dropped.
 */
export function debugLogger(log: Logger): Logger {
  const v = process.env.TSVM_DEBUG;
  return v && v !== '0' ? (line) => log(`debug: ${line}`) : silentLogger;
}
