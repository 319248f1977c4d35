/**
 * Fault injection in the manner of the kernel's fail_nth: a task writes N, and the Nth evaluation
 * of an enabled fault site in that task fails, after which the counter is spent. Sites mirror the
 * kernel's fault attributes: `slab` (kmalloc/xarray allocations → ENOMEM), `page_alloc`,
 * `iommufd` (iommufd_should_fail), and `usercopy` (copy_{from,to}_user → EFAULT).
 */

export type FaultSite = 'slab' | 'page_alloc' | 'iommufd' | 'usercopy';

export interface FailNthTask {
  failNth: number;
}

export class FaultInjector {
  /**
   * Which sites fail_nth counts. The default is the oracle kernel's configuration: failslab,
   * fail_page_alloc and fail_iommufd; usercopy injection (CONFIG_FAULT_INJECTION_USERCOPY) is off
   * there and opt-in here.
   */
  readonly enabled = new Set<FaultSite>(['slab', 'page_alloc', 'iommufd']);
  /** Every site evaluation, for sweeps that want to know how many points a call has. */
  evaluations = 0;

  /** should_fail(): true when this evaluation is the armed Nth one for `task`. */
  shouldFail(task: FailNthTask | null, site: FaultSite): boolean {
    if (!task || !this.enabled.has(site)) return false;
    this.evaluations++;
    if (task.failNth === 0) return false;
    task.failNth--;
    return task.failNth === 0;
  }
}
