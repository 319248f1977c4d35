#!/usr/bin/env node
/**
 * The iommufd-emu command line. Host I/O lives here, never in the kernel library.
 */

import { runDemo } from './demo.js';

const USAGE = `usage: iommufd-emu <command>

commands:
  demo     run a scripted session against /dev/iommu on the built-in machine,
           printing every call, its result, and for refusals the errno and the reason
  help     show this text
`;

function main(argv: string[]): number {
  const [cmd] = argv;
  switch (cmd) {
    case 'demo':
      return runDemo((line) => process.stdout.write(`${line}\n`));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`iommufd-emu: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
