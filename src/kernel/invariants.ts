/**
 * Whole-machine consistency checks, cheap enough for tests to run after every call:
 * - every iommufd object's `users` equals 1 plus the references the object graph says it has
 *   (accesses, open fault fds, HWPTs on their IOAS / parent / fault, devices attached to a HWPT,
 *   bound devices held by their driver);
 * - each IOMMU group's attached devices agree with its HWPT, and the group's DMA domain is the
 *   HWPT's domain while attached and its blocking domain while merely owned;
 * - every paging HWPT's domain is in its IOAS's io_pagetable (and nothing else is);
 * - each PCI device's IOMMU context points at its group's current domain;
 * - areas of each IOAS are aligned, disjoint, backed by live pages, and clear of reserved ranges;
 * - every frame's pin count equals the pins all iopt_pages hold on it; every pinned frame is live;
 * - each user's locked_vm and each mm's locked_vm/pinned_vm equal what iopt_pages charged;
 * - likewise for the legacy container's type1 mappings (pins per frame, the mapper's locked_vm).
 * Returns the list of violations (empty when consistent).
 */

import { IommufdAccess } from './iommufd/access.js';
import { IommufdDevice, type IommufdGroup } from './iommufd/device.js';
import { IommufdFault } from './iommufd/fault.js';
import { HwptNested, HwptPaging, IommufdHwpt } from './iommufd/hw_pagetable.js';
import { IOMMUFD_OBJ, IOPT_PAGES_ACCOUNT } from './iommufd/object.js';
import type { IommufdIoas } from './iommufd/ioas.js';
import type { IoptPages } from './iommufd/pages.js';
import type { Machine } from './machine.js';
import type { Mm } from './mm/mm.js';
import type { Frame } from './mm/physmem.js';
import { VfioIommu } from './vfio/vfio_iommu_type1.js';

export function checkInvariants(m: Machine): string[] {
  const errs: string[] = [];
  const allPages = new Set<IoptPages>();
  for (const ictx of m.iommufd.contexts) {
    const expectedUsers = new Map<number, number>();
    for (const obj of ictx.objects()) expectedUsers.set(obj.id, 1);
    const bump = (id: number): void => void expectedUsers.set(id, (expectedUsers.get(id) ?? 0) + 1);
    for (const obj of ictx.objects()) {
      if (obj instanceof IommufdFault && obj.file && obj.file.refs > 0) bump(obj.id); // its open fd
      if (obj instanceof IommufdHwpt) {
        if (obj.fault) bump(obj.fault.id);
        if (obj instanceof HwptPaging) bump(obj.ioas.id);
        if (obj instanceof HwptNested) bump(obj.parent.id);
      }
      if (obj instanceof IommufdDevice) {
        bump(obj.id); // the binding driver's reference, until unbind
        if (obj.attached) bump(obj.id); // the attachment's, until detach
      }
      if (!(obj instanceof IommufdAccess)) continue;
      bump(obj.id); // the creating driver's reference
      if (obj.ioas) bump(obj.ioas.id);
    }
    for (const obj of ictx.objects()) {
      if (obj.type !== IOMMUFD_OBJ.IOAS) continue;
      const iopt = (obj as IommufdIoas).iopt;
      let prevLast = -1n;
      for (const a of iopt.areas) {
        const where = `ioas ${obj.id} area [0x${a.start.toString(16)}, 0x${a.last.toString(16)}]`;
        if (a.start <= prevLast) errs.push(`${where} overlaps the previous area`);
        prevLast = a.last;
        if (!a.pages) errs.push(`${where} has no pages outside an ioctl`);
        else {
          allPages.add(a.pages);
          if (a.pages.refs <= 0) errs.push(`${where} points at released pages`);
          if (a.pagesLast >= a.pages.npages) errs.push(`${where} runs past its pages`);
        }
        const al = iopt.iovaAlignment - 1n;
        if (a.start & al || a.length & al || BigInt(a.pageOffset) & al) errs.push(`${where} breaks alignment 0x${iopt.iovaAlignment.toString(16)}`);
        const r = iopt.reserved.iterFirst(a.start, a.last);
        if (r) errs.push(`${where} intersects reserved [0x${r.start.toString(16)}, 0x${r.last.toString(16)}]`);
      }
    }
    for (const [gid, g] of ictx.groups as Map<number, IommufdGroup>) {
      const where = `iommufd group ${gid}`;
      if (g.hwpt) {
        if (!g.devices.length) errs.push(`${where} has HWPT ${g.hwpt.id} but no attached device`);
        for (let i = 0; i < g.devices.length; i++) bump(g.hwpt.id);
        if (g.group.domain !== g.hwpt.domain) errs.push(`${where} is attached to HWPT ${g.hwpt.id} but its IOMMU group translates through another domain`);
      } else {
        if (g.devices.length) errs.push(`${where} lists attached devices but no HWPT`);
        if (g.group.owner === ictx && g.group.domain !== g.group.blockingDomain) errs.push(`${where} is owned but not blocked while detached`);
      }
    }
    for (const obj of ictx.objects()) {
      if (!(obj instanceof HwptPaging)) continue;
      const inIopt = obj.ioas.iopt.domains.includes(obj.domain);
      if (inIopt !== obj.listed) errs.push(`HWPT ${obj.id}: listed ${obj.listed} but its domain is ${inIopt ? '' : 'not '}in IOAS ${obj.ioas.id}'s io_pagetable`);
    }
    for (const obj of ictx.objects()) {
      const want = expectedUsers.get(obj.id) ?? 1;
      if (obj.users !== want) errs.push(`object ${obj.id} has users ${obj.users}, the graph says ${want}`);
    }
  }
  // Pins: every frame's pin count is the sum of the pins iopt_pages hold on it.
  const pinsByFrame = new Map<Frame, number>();
  const userCharge = new Map<number, number>();
  const mmLocked = new Map<Mm, number>();
  const mmPinned = new Map<Mm, number>();
  for (const p of allPages) {
    let n = 0;
    for (const idx of p.pinnedIndexes()) {
      const f = p.frameAt(idx)!;
      pinsByFrame.set(f, (pinsByFrame.get(f) ?? 0) + 1);
      n++;
    }
    if (n !== p.npinned) errs.push(`iopt_pages at 0x${p.uptr.toString(16)} counts ${p.npinned} pinned but holds ${n}`);
    if (p.lastNpinned !== p.npinned) errs.push(`iopt_pages at 0x${p.uptr.toString(16)} charged ${p.lastNpinned} but holds ${p.npinned}`);
    if (p.accountMode === IOPT_PAGES_ACCOUNT.USER) userCharge.set(p.sourceUser.uid, (userCharge.get(p.sourceUser.uid) ?? 0) + p.lastNpinned);
    if (p.accountMode === IOPT_PAGES_ACCOUNT.MM) mmLocked.set(p.sourceMm, (mmLocked.get(p.sourceMm) ?? 0) + p.lastNpinned);
    mmPinned.set(p.sourceMm, (mmPinned.get(p.sourceMm) ?? 0) + p.lastNpinned);
  }
  // The legacy container's type1 backend pins per mapping and charges the mapper's locked_vm.
  for (const c of m.vfio.containers.containers()) {
    if (!(c.iommuData instanceof VfioIommu)) continue;
    for (const dma of c.iommuData.dmas) {
      if (dma.lockedVm > dma.frames.length) errs.push(`type1 mapping at 0x${dma.start.toString(16)} charged ${dma.lockedVm} pages but pins ${dma.frames.length}`);
      mmLocked.set(dma.mm, (mmLocked.get(dma.mm) ?? 0) + dma.lockedVm);
      for (const f of dma.frames) pinsByFrame.set(f, (pinsByFrame.get(f) ?? 0) + 1);
    }
  }
  for (const f of m.phys.frames()) {
    const want = pinsByFrame.get(f) ?? 0;
    if (f.pins !== want) errs.push(`frame pfn 0x${f.pfn.toString(16)} has ${f.pins} pins, iopt_pages hold ${want}`);
    if (f.refs < f.pins) errs.push(`frame pfn 0x${f.pfn.toString(16)} has fewer refs (${f.refs}) than pins (${f.pins})`);
  }
  for (const f of pinsByFrame.keys()) if (m.phys.lookup(f.pfn) !== f) errs.push(`pinned frame pfn 0x${f.pfn.toString(16)} was freed`);
  for (const u of m.users()) {
    const want = userCharge.get(u.uid) ?? 0;
    if (u.lockedVm !== want) errs.push(`uid ${u.uid} locked_vm is ${u.lockedVm} pages, iopt_pages charged ${want}`);
  }
  const mms = new Set<Mm>([...[...m.processes()].map((p) => p.mm), ...mmLocked.keys(), ...mmPinned.keys()]);
  for (const mm of mms) {
    if (mm.lockedVm !== (mmLocked.get(mm) ?? 0)) errs.push(`an mm's locked_vm is ${mm.lockedVm} pages, iopt_pages charged ${mmLocked.get(mm) ?? 0}`);
    if (mm.pinnedVm !== (mmPinned.get(mm) ?? 0)) errs.push(`an mm's pinned_vm is ${mm.pinnedVm} pages, iopt_pages pinned ${mmPinned.get(mm) ?? 0}`);
  }
  // The IOMMU hardware translates each device through the domain its group is attached to.
  errs.push(...m.iommu.checkHardware());
  return errs;
}
