import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the installed package (the folder holding package.json), from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the autoscaler package root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The built CLI entry point, used to start agents as child processes. */
export function cliEntry(): string {
  return join(packageRoot(), 'dist', 'cli', 'main.js');
}
