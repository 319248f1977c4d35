/**
 * `iommufd-emu run [--root] [--sva | --noiommu] [--machine FILE] -- PROGRAM ARGS`: start a daemon inside this process,
 * run the program with the preload shim pointed at it, and exit with the program's status
 * (128+signal when it was killed), as umockdev-run does. `iommufd-emu serve` runs the daemon alone.
 * Both give clients a debugfs (src/server/debugfs.ts) next to the socket. `--sva` adds an
 * SVA-capable edu function (0000:00:04.0) to the built-in machine; `--noiommu` takes its IOMMU
 * away and turns on vfio's noiommu mode (edu in /dev/vfio/noiommu-0).
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants } from 'node:os';
import { createDefaultMachine } from '../kernel/default_machine.js';
import { Daemon, defaultSocketPath } from '../server/daemon.js';
import { makeDebugfs } from '../server/debugfs.js';

/** The shim the install step built (build/libiommufd-emu.so at the package root). */
export function shimPath(): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  return join(root, 'build', 'libiommufd-emu.so');
}

export async function runProgram(argv: string[]): Promise<number> {
  const sep = argv.indexOf('--');
  const opts = sep >= 0 ? argv.slice(0, sep) : [];
  const cmd = sep >= 0 ? argv.slice(sep + 1) : argv;
  if (opts.includes('--machine')) {
    process.stderr.write('iommufd-emu run: --machine files arrive with the simulated IOMMU hardware; only the built-in machine exists yet\n');
    return 2;
  }
  const unknown = opts.find((o) => o !== '--root' && o !== '--sva' && o !== '--noiommu');
  if (!cmd.length || unknown !== undefined) {
    process.stderr.write(`${unknown !== undefined ? `iommufd-emu run: unknown option ${unknown}\n` : ''}usage: iommufd-emu run [--root] [--sva | --noiommu] [--machine FILE] -- PROGRAM [ARGS...]\n`);
    return 2;
  }
  if (opts.includes('--sva') && opts.includes('--noiommu')) {
    process.stderr.write('iommufd-emu run: --sva needs an IOMMU and --noiommu takes it away; pick one\n');
    return 2;
  }
  const shim = shimPath();
  if (!existsSync(shim)) {
    process.stderr.write(`iommufd-emu run: ${shim} is missing; run npm install (it builds the shim with cc)\n`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'iommufd-emu-'));
  const sock = join(dir, 'sock');
  const debugfs = makeDebugfs(join(dir, 'debugfs'));
  const daemon = new Daemon(createDefaultMachine({ sva: opts.includes('--sva'), noiommu: opts.includes('--noiommu') }), { identity: opts.includes('--root') ? 'root' : 'real' });
  await daemon.listen(sock);
  try {
    const preload = [shim, process.env.LD_PRELOAD].filter(Boolean).join(':');
    const child = spawn(cmd[0]!, cmd.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, LD_PRELOAD: preload, IOMMUFD_EMU_SOCKET: sock, IOMMUFD_EMU_DEBUGFS: debugfs },
    });
    return await new Promise<number>((done) => {
      child.on('error', (e) => {
        process.stderr.write(`iommufd-emu run: cannot start ${cmd[0]}: ${e.message}\n`);
        done(127);
      });
      child.on('exit', (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
  } finally {
    await daemon.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function serve(argv: string[]): Promise<number> {
  const i = argv.indexOf('--socket');
  const path = i >= 0 && argv[i + 1] ? argv[i + 1]! : defaultSocketPath();
  const daemon = new Daemon(createDefaultMachine());
  await daemon.listen(path);
  const debugfs = makeDebugfs(join(dirname(path), 'debugfs'));
  process.stdout.write(
    `iommufd-emu: serving the built-in machine on ${path}\n` +
      `  run a program with: LD_PRELOAD=${shimPath()} IOMMUFD_EMU_SOCKET=${path} IOMMUFD_EMU_DEBUGFS=${debugfs} PROGRAM\n`,
  );
  await new Promise<void>((stop) => {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await daemon.close();
  return 0;
}
