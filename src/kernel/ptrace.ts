/**
 * ptrace_may_access (kernel/ptrace.c) as the callers that borrow it use it: /proc/PID/pagemap's
 * proc_mem_open (PTRACE_MODE_READ_FSCREDS) and mm_access for another process's address space.
 * Processes here have one uid, one gid and one capability set (effective = permitted), so the
 * checks are: the caller's own process; else the same uid and gid and no capability the target
 * has and the caller lacks (cap_ptrace_access_check); else CAP_SYS_PTRACE. Yama is not built in
 * the oracle's kernel.
 */

import { CAP_SYS_PTRACE, type Process } from './process.js';

/** Why `caller` may not access `target`, or null when it may. */
export function ptraceDenied(caller: Process, target: Process): string | null {
  if (caller === target || caller.mm === target.mm) return null;
  if (caller.capable(CAP_SYS_PTRACE)) return null;
  if (target.cred.uid !== caller.cred.uid || target.cred.gid !== caller.cred.gid) {
    return `process ${caller.pid} (uid ${caller.cred.uid}, gid ${caller.cred.gid}) and process ${target.pid} (uid ${target.cred.uid}, gid ${target.cred.gid}) differ in credentials and the caller lacks CAP_SYS_PTRACE`;
  }
  const extra = [...target.cred.caps].filter((c) => !caller.cred.caps.has(c));
  if (extra.length) return `process ${target.pid} holds capabilities ${extra.join(', ')} that process ${caller.pid} lacks, and the caller lacks CAP_SYS_PTRACE`;
  return null;
}
