/**
 * The slice of /proc the emulated programs use:
 *
 * - /proc/<pid|self>/task/<tid>/fail-nth, the per-task fault-injection knob (read "N\n"; write a
 *   number as kstrtouint does: decimal, 0x hex, 0 octal, one trailing newline allowed). Tasks are
 *   single-threaded processes, so tid equals pid.
 * - /proc/<pid|self>/pagemap, one 64-bit entry per virtual page (Mm.pagemap): how a noiommu driver
 *   learns the physical address to give its device. Opening needs the file's mode (0400, the
 *   process's uid) and ptrace read access to the process (proc_mem_open); PFNs are shown only to an opener with CAP_SYS_ADMIN, as
 *   file_ns_capable checks the opener's credentials; reads are whole entries at entry-aligned
 *   positions (EINVAL otherwise) and stop at the top of the user address space; a process that
 *   exited reads as empty.
 */

import { Errno, fail } from '../errno.js';
import { kstrtouint } from './lib/kstrtox.js';
import { type Mm, TASK_SIZE } from './mm/mm.js';
import { PAGE_SHIFT } from './mm/physmem.js';
import { CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN, type Process } from './process.js';
import { ptraceDenied } from './ptrace.js';
import { copyFromUser, copyToUser } from './uaccess.js';
import { File, type FileOperations, O_RDONLY } from './vfs.js';

const FAIL_NTH = /^\/proc\/(self|\d+)\/task\/(\d+)\/fail-nth$/;
const PAGEMAP = /^\/proc\/(self|\d+)\/pagemap$/;
const PM_ENTRY_BYTES = 8;
/** Entries one read walks at a time at most (the kernel walks PAGEMAP_WALK_SIZE chunks; any bound works). */
const PAGEMAP_CHUNK = 512;

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
    target(file).failNth = kstrtouint(raw, 'fail-nth');
    return count;
  },
};

interface Pagemap {
  readonly mm: Mm;
  readonly showPfn: boolean;
}

const pagemapFops: FileOperations = {
  name: 'pagemap',
  seekable: true,
  read(file, task, buf, count) {
    const { mm, showPfn } = file.priv as Pagemap;
    if (!mm.alive) return 0;
    if (file.pos % PM_ENTRY_BYTES || count % PM_ENTRY_BYTES) {
      fail(Errno.EINVAL, `pagemap reads whole ${PM_ENTRY_BYTES}-byte entries at aligned positions (position ${file.pos}, count ${count})`);
    }
    const last = Number(TASK_SIZE >> BigInt(PAGE_SHIFT));
    let page = file.pos / PM_ENTRY_BYTES;
    let left = Math.min(count / PM_ENTRY_BYTES, Math.max(0, last - page));
    let done = 0;
    while (left > 0) {
      const n = Math.min(left, PAGEMAP_CHUNK);
      const entries = mm.pagemap(BigInt(page) << BigInt(PAGE_SHIFT), n, showPfn);
      const bytes = new Uint8Array(n * PM_ENTRY_BYTES);
      const view = new DataView(bytes.buffer);
      entries.forEach((e, i) => view.setBigUint64(i * PM_ENTRY_BYTES, e, true));
      copyToUser(task, buf + BigInt(done), bytes, 'reading pagemap');
      done += bytes.length;
      page += n;
      left -= n;
    }
    file.pos += done;
    return done;
  },
};

/**
 * pagemap is mode 0400, owned by the process's uid: opening it for writing needs
 * CAP_DAC_OVERRIDE; then proc_mem_open(PTRACE_MODE_READ_FSCREDS): the process's own mm, or one
 * the opener could ptrace.
 */
function pagemapOpen(task: Process, owner: Process, path: string, flags: number): File {
  const owned = task.cred.uid === owner.cred.uid;
  if ((flags & 3) !== O_RDONLY && !task.capable(CAP_DAC_OVERRIDE)) fail(Errno.EACCES, `${path} is mode 0400: open it read-only`);
  if (!owned && !task.capable(CAP_DAC_OVERRIDE) && !task.capable(CAP_DAC_READ_SEARCH)) fail(Errno.EACCES, `${path} is mode 0400 and owned by uid ${owner.cred.uid}`);
  const denied = ptraceDenied(task, owner);
  if (denied) fail(Errno.EACCES, `${path}: ${denied}`);
  return new File(pagemapFops, path, flags, { mm: owner.mm, showPfn: task.capable(CAP_SYS_ADMIN) } satisfies Pagemap);
}

/** Open a /proc path for `task`, or null when the path is not one procfs serves. */
export function procOpen(task: Process, path: string, flags: number): File | null {
  const pm = PAGEMAP.exec(path);
  if (pm) {
    const owner = pm[1] === 'self' ? task : task.machine.process(Number(pm[1]));
    if (!owner || owner.exited) fail(Errno.ENOENT, `${path}: no such process`);
    return pagemapOpen(task, owner, path, flags);
  }
  const m = FAIL_NTH.exec(path);
  if (!m) return null;
  const pid = m[1] === 'self' ? task.pid : Number(m[1]);
  const owner = task.machine.process(pid);
  if (!owner || Number(m[2]) !== owner.pid) fail(Errno.ENOENT, `${path}: no such task`);
  return new File(failNthFops, path, flags, owner);
}
