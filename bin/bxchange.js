#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=300
// The `bxchange` command. In a checkout (src/ present) on a Node that strips
// TypeScript types, the sources run directly, so a stale dist/ never shadows
// them; otherwise (Docker image, old Node) the compiled dist/ runs. The
// first line passes the server's Node flags (src/node-flags.ts).
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/index.js', import.meta.url);
const source = new URL('../src/cli/index.ts', import.meta.url);

let cli;
try {
  const runSource = existsSync(source) && (process.features.typescript !== undefined || !existsSync(built));
  cli = await import(runSource ? source.href : built.href);
} catch (err) {
  if (err && err.code === 'ERR_UNKNOWN_FILE_EXTENSION') {
    process.stderr.write(
      `bxchange: Node ${process.versions.node} cannot run the TypeScript sources: use Node >= 22.18, or run "npm run build" first\n`,
    );
    process.exit(1);
  }
  throw err;
}
process.exit(await cli.run(process.argv.slice(2)));
