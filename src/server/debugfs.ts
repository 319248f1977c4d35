/**
 * The debugfs a shim client sees: a plain directory the shim serves /sys/kernel/debug from
 * (IOMMUFD_EMU_DEBUGFS). It holds the fault-injection attribute directories the 6.12 oracle kernel
 * has (CONFIG_FAILSLAB and CONFIG_IOMMUFD_TEST's fail_iommufd; no fail_page_alloc), each file with
 * the value the oracle shows at boot, so programs that configure fault injection before arming
 * /proc/self/task/TID/fail-nth (tools/testing/selftests/iommu/iommufd_fail_nth.c) find their knobs.
 *
 * The emulated kernel does not read these files: its fail-nth fails the nth injection site of the
 * task whatever the attributes say, which is what the selftest configures them for anyway
 * (ignore-gfp-wait=N, verbose=0).
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** include/linux/fault-inject.h's debugfs attributes, as 6.12 shows them before anyone writes. */
const FAULT_ATTR: Readonly<Record<string, string>> = {
  probability: '0',
  interval: '1',
  times: '1',
  space: '0',
  verbose: '2',
  'verbose_ratelimit_interval_ms': '0',
  'verbose_ratelimit_burst': '10',
  'task-filter': 'N',
};

const DIRS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  failslab: { ...FAULT_ATTR, 'ignore-gfp-wait': 'Y', 'cache-filter': 'N' },
  fail_iommufd: FAULT_ATTR,
};

/** Populate `dir` as the clients' /sys/kernel/debug; returns `dir`. */
export function makeDebugfs(dir: string): string {
  for (const [name, files] of Object.entries(DIRS)) {
    mkdirSync(join(dir, name), { recursive: true });
    for (const [file, value] of Object.entries(files)) writeFileSync(join(dir, name, file), `${value}\n`);
  }
  return dir;
}
