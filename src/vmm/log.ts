// VMM messages go to stderr, one line each, prefixed "tsvm:"; the guest's console owns stdout.
export type Logger = (line: string) => void;

export const stderrLogger: Logger = (line) => {
  process.stderr.write(`tsvm: ${line}\n`);
};

export const silentLogger: Logger = () => {};
