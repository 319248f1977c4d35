/**
 * The slice of /proc the emulated programs use: /proc/<pid|self>/task/<tid>/fail-nth, the per-task
 * fault-injection knob (read "N\n"; write a number as kstrtouint does: decimal, 0x hex, 0 octal,
 * one trailing newline allowed). Tasks are single-threaded processes, so tid equals pid.
 */

import { Errno, fail } from '../errno.js';
import type { Process } from './process.js';
import { copyFromUser, copyToUser } from './uaccess.js';
import { File, type FileOperations } from './vfs.js';

const FAIL_NTH = /^\/proc\/(self|\d+)\/task\/(\d+)\/fail-nth$/;

function target(file: File): Process {
  const t = file.priv as Process;
  if (t.exited) fail(Errno.ESRCH, `task ${t.pid} has exited`);
  return t;
}

const failNthFops: FileOperations = {
  name: 'fail-nth',
  seekable: true,
  read(file, task, buf, count) {
    const text = new TextEncoder().encode(`${target(file).failNth}\n`);
    const chunk = text.subarray(Math.min(file.pos, text.length), Math.min(file.pos + count, text.length));
    copyToUser(task, buf, chunk, 'reading fail-nth');
    file.pos += chunk.length;
    return chunk.length;
  },
  write(file, task, buf, count) {
    const raw = new TextDecoder().decode(copyFromUser(task, buf, count, 'writing fail-nth'));
    const text = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    const m = /^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
    if (!m) fail(Errno.EINVAL, `fail-nth takes an unsigned number, got ${JSON.stringify(raw)}`);
    const s = m[1]!;
    const n = s.startsWith('0x') || s.startsWith('0X') ? Number.parseInt(s.slice(2), 16) : s.length > 1 && s.startsWith('0') ? Number.parseInt(s, 8) : Number(s);
    if (n > 0xffffffff) fail(Errno.ERANGE, `fail-nth value ${s} does not fit in 32 bits`);
    target(file).failNth = n;
    return count;
  },
};

/** Open a /proc path for `task`, or null when the path is not one procfs serves. */
export function procOpen(task: Process, path: string, flags: number): File | null {
  const m = FAIL_NTH.exec(path);
  if (!m) return null;
  const pid = m[1] === 'self' ? task.pid : Number(m[1]);
  const owner = task.machine.process(pid);
  if (!owner || Number(m[2]) !== owner.pid) fail(Errno.ENOENT, `${path}: no such task`);
  return new File(failNthFops, path, flags, owner);
}
