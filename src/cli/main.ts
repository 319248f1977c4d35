#!/usr/bin/env node
/**
 * The iommufd-emu command line. Host I/O lives here, never in the kernel library.
 */

import { runDemo } from './demo.js';
import { runProgram, serve } from './run.js';

const USAGE = `usage: iommufd-emu <command>

commands:
  run [--root] [--sva | --noiommu] [--machine FILE] -- PROGRAM [ARGS...]
           run an unmodified program against the emulated kernel (preload shim + embedded
           daemon); exits with the program's status. --root: the emulated kernel sees uid 0
           with every capability (as the oracle guest runs programs), not the real credentials.
           --sva: add an SVA-capable edu at 0000:00:04.0. --noiommu: no IOMMU; edu is in
           vfio's noiommu group /dev/vfio/noiommu-0
  serve [--socket PATH]
           serve the emulated kernel to shim clients on a Unix socket
  demo     run a scripted session against /dev/iommu on the built-in machine,
           printing every call, its result, and for refusals the errno and the reason
  help     show this text
`;

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case 'run':
      return runProgram(argv.slice(1));
    case 'serve':
      return serve(argv.slice(1));
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

process.exitCode = await main(process.argv.slice(2));
