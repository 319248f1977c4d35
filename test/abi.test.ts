/**
 * ABI conformance: every struct schema, ioctl number and constant in the uapi registries is
 * compared with what gcc computes from the real Linux 6.12 headers.
 *
 * The headers come from .cache/linux-6.12 (scripts/setup-test-env.mjs, run by `npm test`'s
 * pretest). Only linux/iommufd.h and linux/vfio.h are copied into a scratch include directory
 * that shadows the system's older copies; everything they include (linux/types.h, linux/ioctl.h)
 * comes from the system, as for any userspace program. `__user` is defined away because these are
 * the raw uapi headers, not the `make headers_install` output.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { _IO, _IOR, _IOW, _IOWR, StructSchema, type AnyStruct, type FieldLayout, type UapiAbi } from '../src/uapi/index.js';
import * as iommufdModule from '../src/uapi/iommufd.js';
import * as vfioModule from '../src/uapi/vfio.js';
import * as iommufdTestModule from '../src/uapi/iommufd_test.js';

const { iommufdAbi } = iommufdModule;
const { vfioAbi } = vfioModule;
const { iommufdTestAbi } = iommufdTestModule;
const abis: readonly UapiAbi[] = [iommufdAbi, vfioAbi, iommufdTestAbi];
const modules = new Map<UapiAbi, Record<string, unknown>>([
  [iommufdAbi, iommufdModule],
  [vfioAbi, vfioModule],
  [iommufdTestAbi, iommufdTestModule],
]);

/** Every struct a registry describes, union members included. */
const allStructs = (abi: UapiAbi): AnyStruct[] => [...abi.structs, ...(abi.unionMembers ?? [])];

/** The repository root: the nearest ancestor of this file (src or dist/test) with a package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

const uapiDir = join(repoRoot(), '.cache', 'linux-6.12', 'include', 'uapi');
/** Where each registry's header lives in the extracted tree. */
const headerPath = (abi: UapiAbi): string =>
  abi === iommufdTestAbi ? join(repoRoot(), '.cache', 'linux-6.12', 'drivers', 'iommu', 'iommufd', 'iommufd_test.h') : join(uapiDir, abi.header);

// ---------------------------------------------------------------------------------------------
// The C side

/** `ioctl.h` samples: [C expression, value from our encoder]. */
const ioctlSamples: ReadonlyArray<readonly [string, () => number]> = [
  ["_IO(';', 0x80)", () => _IO(0x3b, 0x80)],
  ["_IO('V', 255)", () => _IO(0x56, 255)],
  ["_IOR('x', 1, char[24])", () => _IOR(0x78, 1, 24)],
  ["_IOW('x', 2, __u32)", () => _IOW(0x78, 2, 4)],
  ["_IOWR(';', 0x85, struct iommu_ioas_map)", () => _IOWR(0x3b, 0x85, iommufdModule.iommu_ioas_map.size)],
  ["_IOWR(0xff, 0xff, char[16383])", () => _IOWR(0xff, 0xff, 16383)],
  ["_IOR(0, 0, char[1])", () => _IOR(0, 0, 1)],
];

interface CField {
  offset: number;
  size: number;
  /** 1 or 0 from `__builtin_types_compatible_p`, or -1 when not checked (unions as bytes). */
  typeOk: number;
}

interface CFacts {
  structs: Map<string, { size: number; align: number; fields: Map<string, CField> }>;
  ioctls: Map<string, bigint>;
  constants: Map<string, bigint>;
  samples: Map<string, bigint>;
}

const cMember = (s: AnyStruct, f: FieldLayout): string => s.cFieldNames[f.name] ?? f.name;
const isFlex = (f: FieldLayout): boolean => f.size === 0 && f.type.cType.endsWith('[]');
const isOpaqueUnion = (f: FieldLayout): boolean => f.type.cType.startsWith('union(');
const cString = (s: string): string => JSON.stringify(s);

function cProgram(): string {
  const out: string[] = [
    '#include <stddef.h>',
    '#include <stdio.h>',
    '#include <linux/ioctl.h>',
    '#include <linux/iommufd.h>',
    '#include <linux/vfio.h>',
    '#include "iommufd_test.h"',
    '#define MEMBER(T, m) (((T *)0)->m)',
    '#define TYPE_OK(T, m, ct) __builtin_types_compatible_p(__typeof__(MEMBER(T, m)), ct)',
    'int main(void)',
    '{',
  ];
  for (const abi of abis) {
    for (const s of allStructs(abi)) {
      const T = s.cName;
      out.push(`\tprintf("S\\t%s\\t%zu\\t%zu\\n", ${cString(s.name)}, sizeof(${T}), _Alignof(${T}));`);
      for (const f of s.fields) {
        const m = cMember(s, f);
        const size = isFlex(f) ? '(size_t)0' : `sizeof(MEMBER(${T}, ${m}))`;
        const typeOk = isOpaqueUnion(f) ? '-1' : `TYPE_OK(${T}, ${m}, ${f.type.cType})`;
        out.push(
          `\tprintf("F\\t%s\\t%s\\t%zu\\t%zu\\t%d\\n", ${cString(s.name)}, ${cString(f.name)}, offsetof(${T}, ${m}), ${size}, ${typeOk});`,
        );
      }
    }
    for (const name of Object.keys(abi.ioctls)) {
      out.push(`\tprintf("I\\t%s\\t%lu\\n", ${cString(name)}, (unsigned long)(${name}));`);
    }
    for (const name of Object.keys(abi.constants)) {
      out.push(`\tprintf("C\\t%s\\t%lld\\n", ${cString(name)}, (long long)(${name}));`);
    }
  }
  for (const [expr] of ioctlSamples) {
    out.push(`\tprintf("M\\t%s\\t%lu\\n", ${cString(expr)}, (unsigned long)(${expr}));`);
  }
  out.push('\treturn 0;', '}', '');
  return out.join('\n');
}

function parseFacts(text: string): CFacts {
  const facts: CFacts = { structs: new Map(), ioctls: new Map(), constants: new Map(), samples: new Map() };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [kind, a = '', b = '', c = '', d = '', e = ''] = line.split('\t');
    if (kind === 'S') facts.structs.set(a, { size: Number(b), align: Number(c), fields: new Map() });
    else if (kind === 'F') facts.structs.get(a)?.fields.set(b, { offset: Number(c), size: Number(d), typeOk: Number(e) });
    else if (kind === 'I') facts.ioctls.set(a, BigInt(b));
    else if (kind === 'C') facts.constants.set(a, BigInt(b));
    else if (kind === 'M') facts.samples.set(a, BigInt(b));
    else throw new Error(`unexpected output line from the ABI probe: ${line}`);
  }
  return facts;
}

let probed: CFacts | undefined;

/** Compile and run the probe once; later calls reuse its answers. */
function gcc(): CFacts {
  if (probed) return probed;
  for (const h of ['iommufd.h', 'vfio.h']) {
    if (!existsSync(join(uapiDir, 'linux', h))) {
      throw new Error(`${join(uapiDir, 'linux', h)} is missing: run \`node scripts/setup-test-env.mjs\` (npm test does it in pretest)`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'iommufd-emu-abi-'));
  try {
    mkdirSync(join(dir, 'include', 'linux'), { recursive: true });
    for (const h of ['iommufd.h', 'vfio.h']) copyFileSync(join(uapiDir, 'linux', h), join(dir, 'include', 'linux', h));
    copyFileSync(headerPath(iommufdTestAbi), join(dir, 'include', 'iommufd_test.h'));
    writeFileSync(join(dir, 'probe.c'), cProgram());
    try {
      execFileSync('cc', ['-std=gnu11', '-Wall', '-D__user=', '-I', join(dir, 'include'), '-o', join(dir, 'probe'), join(dir, 'probe.c')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
      throw new Error(`compiling the ABI probe failed (a schema names a field or constant the header lacks?):\n${stderr}`);
    }
    probed = parseFacts(execFileSync(join(dir, 'probe'), { encoding: 'utf8' }));
    return probed;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The header text, for coverage: which structs, members, ioctls and constants it declares

interface HeaderDecls {
  /** struct name → its members in order; an anonymous union contributes one slot of alternatives. */
  structs: Map<string, string[][]>;
  ioctls: Set<string>;
  constants: Set<string>;
}

function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of body) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (ch === ';' && depth === 0) {
      parts.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur.trim());
  return parts.filter((p) => p.length > 0);
}

function members(body: string): string[][] {
  const slots: string[][] = [];
  for (const stmt of splitTopLevel(body)) {
    const anon = /^(union|struct)\s*\{([\s\S]*)\}$/.exec(stmt);
    if (anon) {
      const inner = members(anon[2] ?? '').flat();
      if (anon[1] === 'union') slots.push(inner);
      else for (const m of inner) slots.push([m]);
      continue;
    }
    const name = /(\w+)\s*(\[[^\]]*\])?$/.exec(stmt)?.[1];
    if (!name) throw new Error(`cannot parse member declaration: ${stmt}`);
    slots.push([name]);
  }
  return slots;
}

function parseHeader(path: string): HeaderDecls {
  const text = readFileSync(path, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\/\/.*$/gm, '')
    .replace(/\\\n/g, ' ');
  const decls: HeaderDecls = { structs: new Map(), ioctls: new Set(), constants: new Set() };
  for (const m of text.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)(\()?[ \t]*(.*)$/gm)) {
    const [, name = '', fnLike, value = ''] = m;
    if (fnLike || value.trim() === '') continue;
    if (/\b_IO(R|W|WR)?\s*\(/.test(value)) decls.ioctls.add(name);
    else decls.constants.add(name);
  }
  const code = text.replace(/^\s*#.*$/gm, '');
  for (const m of code.matchAll(/\benum\s*\w*\s*\{([^}]*)\}/g)) {
    for (const item of (m[1] ?? '').split(',')) {
      const name = /^\s*(\w+)/.exec(item)?.[1];
      if (name) decls.constants.add(name);
    }
  }
  for (const m of code.matchAll(/\bstruct\s+(\w+)\s*\{/g)) {
    let depth = 1;
    let i = (m.index ?? 0) + m[0].length;
    const start = i;
    for (; depth > 0 && i < code.length; i++) {
      if (code[i] === '{') depth++;
      else if (code[i] === '}') depth--;
    }
    decls.structs.set(m[1] ?? '', members(code.slice(start, i - 1)));
  }
  return decls;
}

/** What each header declares that the registry deliberately does not carry. */
const outOfScope: ReadonlyMap<UapiAbi, { structs: readonly string[]; ioctls: readonly string[]; constants: RegExp | null }> = new Map([
  [iommufdAbi, { structs: [], ioctls: [], constants: null }],
  [iommufdTestAbi, { structs: [], ioctls: [], constants: null }],
  [
    vfioAbi,
    {
      structs: [
        'vfio_region_gfx_edid',
        'vfio_device_migration_info',
        'vfio_region_info_cap_nvlink2_ssatgt',
        'vfio_region_info_cap_nvlink2_lnkspd',
        'vfio_iommu_spapr_tce_ddw_info',
        'vfio_iommu_spapr_tce_info',
        'vfio_eeh_pe_err',
        'vfio_eeh_pe_op',
        'vfio_iommu_spapr_register_memory',
        'vfio_iommu_spapr_tce_create',
        'vfio_iommu_spapr_tce_remove',
      ],
      ioctls: [
        'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
        'VFIO_EEH_PE_OP',
        'VFIO_IOMMU_SPAPR_REGISTER_MEMORY',
        'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
        'VFIO_IOMMU_SPAPR_TCE_CREATE',
        'VFIO_IOMMU_SPAPR_TCE_REMOVE',
      ],
      constants:
        /^(VFIO_CCW_|VFIO_AP_|VFIO_EEH_PE_|VFIO_IOMMU_SPAPR_|VFIO_DEVICE_STATE_V1_|VFIO_DEVICE_GFX_LINK_STATE_)|^VFIO_DEVICE_STATE_MASK$|^VFIO_DEVICE_API_\w+_STRING$/,
    },
  ],
]);

// ---------------------------------------------------------------------------------------------
// The tests

/** Compare named values; each mismatch becomes one line naming the item and both answers. */
function mismatches(items: ReadonlyArray<readonly [string, unknown, unknown]>): string[] {
  return items.filter(([, ours, theirs]) => ours !== theirs).map(([what, ours, theirs]) => `${what}: schema ${String(ours)}, gcc ${String(theirs)}`);
}

function structMismatches(s: AnyStruct, c: CFacts): string[] {
  const cs = c.structs.get(s.name);
  if (!cs) return [`struct ${s.name}: no answer from gcc`];
  const items: Array<readonly [string, unknown, unknown]> = [
    [`sizeof(struct ${s.name})`, s.size, cs.size],
    [`_Alignof(struct ${s.name})`, s.align, cs.align],
  ];
  for (const f of s.fields) {
    const cf = cs.fields.get(f.name);
    const what = `${s.name}.${cMember(s, f)}`;
    if (!cf) {
      items.push([what, 'present', 'no answer']);
      continue;
    }
    items.push([`offsetof(${what})`, f.offset, cf.offset]);
    items.push([`sizeof(${what})`, f.size, cf.size]);
    if (cf.typeOk === 0) items.push([`type of ${what}`, f.type.cType, `not compatible with ${f.type.cType}`]);
  }
  return mismatches(items);
}

for (const abi of abis) {
  test(`${abi.header}: struct layouts match gcc`, async (t) => {
    const c = gcc();
    for (const s of allStructs(abi)) {
      await t.test(`struct ${s.name}`, () => {
        const bad = structMismatches(s, c);
        assert.deepEqual(bad, [], `struct ${s.name} differs from gcc:\n  ${bad.join('\n  ')}`);
      });
    }
  });

  test(`${abi.header}: ioctl numbers match gcc`, async (t) => {
    const c = gcc();
    const groups = new Map<string, string[]>();
    for (const name of Object.keys(abi.ioctls)) {
      const group = ioctlGroup(name);
      groups.set(group, [...(groups.get(group) ?? []), name]);
    }
    for (const [group, names] of groups) {
      await t.test(`${group} ioctls`, () => {
        const bad = mismatches(names.map((n) => [n, hex(abi.ioctls[n]), hex(c.ioctls.get(n))]));
        assert.deepEqual(bad, [], `${group} ioctl numbers differ from gcc:\n  ${bad.join('\n  ')}`);
      });
    }
  });

  test(`${abi.header}: constants match gcc`, () => {
    const c = gcc();
    const bad = mismatches(Object.entries(abi.constants).map(([n, v]) => [n, String(v), String(c.constants.get(n) ?? 'no answer')]));
    assert.deepEqual(bad, [], `${abi.header} constants differ from gcc:\n  ${bad.join('\n  ')}`);
  });

  test(`${abi.header}: every struct, member, ioctl and constant of the header is registered or knowingly left out`, () => {
    const decls = parseHeader(headerPath(abi));
    const skip = outOfScope.get(abi);
    assert.ok(skip);
    assert.ok(decls.structs.size > 0 && decls.ioctls.size > 0 && decls.constants.size > 0, `parsed nothing from ${abi.header}`);
    const registered = new Map(abi.structs.map((s) => [s.name, s]));
    const missingStructs = [...decls.structs.keys()].filter((n) => !registered.has(n) && !skip.structs.includes(n));
    assert.deepEqual(missingStructs, [], `${abi.header}: structs without a schema`);
    for (const s of abi.structs) {
      const cMembers = decls.structs.get(s.name);
      assert.ok(cMembers, `${abi.header} declares no struct ${s.name}`);
      const ours = s.fields.map((f) => cMember(s, f));
      const theirs = cMembers.map((alts, i) => {
        const mine = ours[i];
        return mine !== undefined && alts.includes(mine) ? mine : alts.join('|');
      });
      assert.deepEqual(ours, theirs, `struct ${s.name}: schema fields differ from the header's members`);
    }
    const missingIoctls = [...decls.ioctls].filter((n) => !(n in abi.ioctls) && !skip.ioctls.includes(n));
    assert.deepEqual(missingIoctls, [], `${abi.header}: ioctls not registered`);
    const missingConstants = [...decls.constants].filter((n) => !(n in abi.constants) && !(skip.constants?.test(n) ?? false));
    assert.deepEqual(missingConstants, [], `${abi.header}: constants not registered`);
  });
}

test('registries: every exported schema, ioctl and constant is registered and answered by gcc', (t) => {
  const c = gcc();
  let structs = 0;
  let fields = 0;
  let ioctls = 0;
  let constants = 0;
  for (const abi of abis) {
    const mod = modules.get(abi);
    assert.ok(mod);
    for (const [name, value] of Object.entries(mod)) {
      if (value instanceof StructSchema) {
        assert.ok(allStructs(abi).includes(value as AnyStruct), `${abi.header}: exported struct ${name} is not in the registry`);
        assert.equal(value.name, name, `${abi.header}: export ${name} holds struct ${value.name}`);
      } else if (typeof value === 'number' || typeof value === 'bigint') {
        const reg = name in abi.ioctls ? abi.ioctls[name] : abi.constants[name];
        assert.equal(reg, value, `${abi.header}: exported ${name} is not registered under its name`);
      }
    }
    for (const s of allStructs(abi)) {
      assert.equal(mod[s.name], s, `${abi.header}: registered struct ${s.name} is not exported under its C name`);
      assert.ok(c.structs.has(s.name), `struct ${s.name} was not checked by gcc`);
      structs++;
      for (const f of s.fields) {
        assert.ok(c.structs.get(s.name)?.fields.has(f.name), `${s.name}.${f.name} was not checked by gcc`);
        fields++;
      }
    }
    for (const [name, value] of Object.entries(abi.ioctls)) {
      assert.equal(mod[name], value, `${abi.header}: registered ioctl ${name} is not exported under its name`);
      assert.ok(c.ioctls.has(name), `ioctl ${name} was not checked by gcc`);
      ioctls++;
    }
    for (const [name, value] of Object.entries(abi.constants)) {
      assert.equal(mod[name], value, `${abi.header}: registered constant ${name} is not exported under its name`);
      assert.ok(c.constants.has(name), `constant ${name} was not checked by gcc`);
      constants++;
    }
  }
  t.diagnostic(`checked against gcc: ${structs} structs, ${fields} fields, ${ioctls} ioctls, ${constants} constants`);
});

test('_IO/_IOR/_IOW/_IOWR match the C macros', () => {
  const c = gcc();
  const bad = mismatches(ioctlSamples.map(([expr, f]) => [expr, hex(f()), hex(c.samples.get(expr))]));
  assert.deepEqual(bad, [], `ioctl encodings differ from linux/ioctl.h:\n  ${bad.join('\n  ')}`);
  assert.throws(() => _IOR(0x78, 1, 1 << 14), RangeError, 'a size beyond 14 bits must be refused');
});

function ioctlGroup(name: string): string {
  if (name === 'IOMMU_TEST_CMD') return 'IOMMUFD_TEST';
  if (name.startsWith('IOMMU_')) return 'iommufd';
  if (name.startsWith('VFIO_GROUP_')) return 'VFIO group';
  if (name.startsWith('VFIO_DEVICE_') || name.startsWith('VFIO_MIG_')) return 'VFIO device';
  if (name.startsWith('VFIO_IOMMU_')) return 'VFIO type1 IOMMU';
  return 'VFIO container';
}

function hex(v: number | bigint | undefined): string {
  return v === undefined ? 'missing' : `0x${BigInt(v).toString(16)}`;
}
