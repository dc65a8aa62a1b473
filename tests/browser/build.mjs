// Bundle the page for the browser:  node build.mjs <outdir>  →  <outdir>/app.js + index.html
// (The esbuild JS API works whether or not npm ran esbuild's install script.)
import { copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
await build({
  entryPoints: [join(here, 'app.jsx')],
  outfile: join(outdir, 'app.js'),
  bundle: true,
  platform: 'browser',
  format: 'iife',
  minify: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});
copyFileSync(join(here, 'index.html'), join(outdir, 'index.html'));
