/**
 * Builds the browser UI (src/web/) into dist/web/: index.html, styles.css and
 * ES module bundles made by esbuild. openpgp.js and pkijs are loaded by
 * dynamic import, so esbuild splits them into their own chunks and the first
 * screen does not wait for them. No inline script or style anywhere: the
 * server serves these files under `script-src 'self'; style-src 'self'`.
 *
 * Usage: `npm run build:web` (also part of `npm run build`).
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function buildWeb(options: { outDir?: string; minify?: boolean } = {}): Promise<string> {
  const source = path.join(root, 'src', 'web');
  const outDir = options.outDir ?? path.join(root, 'dist', 'web');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: [path.join(source, 'main.ts'), path.join(source, 'styles.css')],
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120', 'firefox121', 'safari17'],
    minify: options.minify ?? true,
    sourcemap: 'linked',
    chunkNames: 'chunks/[name]-[hash]',
    legalComments: 'linked',
    logLevel: 'warning',
    // tus-js-client and pkijs reference Node's Buffer only behind feature tests.
    define: { global: 'globalThis' },
  });
  await copyFile(path.join(source, 'index.html'), path.join(outDir, 'index.html'));
  return outDir;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWeb();
  console.log(`web UI built into ${path.relative(process.cwd(), out) || '.'}`);
}
