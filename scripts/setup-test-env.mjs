#!/usr/bin/env node
// Prepares what the tests need from Linux 6.12: the uapi headers (the ABI conformance test) and
// the IOMMUFD_TEST mock's drivers/iommu/iommufd/iommufd_test.h (the shim tests' C programs),
// extracted from Debian's linux-source-6.12 tarball into .cache/linux-6.12/ (plus the top
// Makefile for the version). Idempotent: a stamp file records which tarball was extracted.
// Prints one line saying what it did.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE, TARBALL, ensureTarball, extractMembers } from './lib/linux-source.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = join(repo, '.cache', 'linux-6.12');

function fail(msg) {
  process.stderr.write(`setup-test-env: ${msg}\n`);
  process.exit(1);
}

const installed = ensureTarball(fail);
const TEST_H = 'drivers/iommu/iommufd/iommufd_test.h';
const expect = [...['iommufd.h', 'vfio.h'].map((h) => join('include', 'uapi', 'linux', h)), TEST_H];
const { extracted, version } = extractMembers(dest, ['include/uapi', TEST_H], expect, fail);
console.log(
  extracted
    ? `setup-test-env: ${installed ? `installed ${PACKAGE}, ` : ''}extracted Linux ${version} include/uapi and iommufd_test.h from ${TARBALL} into ${dest}`
    : `setup-test-env: Linux ${version} uapi headers and iommufd_test.h already in ${dest}`,
);
