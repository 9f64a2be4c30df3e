// CPU time from Linux's /proc, for the benchmarks that measure what a VM process (or one of its
// threads) used.
import { readFileSync } from 'node:fs';

/**
 * User + system CPU seconds in a /proc stat file: `/proc/PID/stat` for a whole process, or
 * `/proc/PID/task/TID/stat` for one thread (utime and stime, fields 14 and 15, in USER_HZ = 100
 * ticks a second; counted after the command name's closing parenthesis, which may hold spaces).
 */
export function procCpuSeconds(statPath: string): number {
  const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
