// Bundle the pages for the browser:  node build.mjs <outdir>
//   → <outdir>/index.html + app.js (react-component 3.0.1), and per older version V
//     <outdir>/legacy-V.html + legacy-V.js (legacy.jsx on react-component V).
// (The esbuild JS API works whether or not npm ran esbuild's install script.)
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const LEGACY_VERSIONS = ['1.3.8', '2.3.2'];

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
const options = {
  bundle: true,
  platform: 'browser',
  format: 'iife',
  minify: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
};
const page = readFileSync(join(here, 'index.html'), 'utf8');
await Promise.all([
  build({ ...options, entryPoints: [join(here, 'app.jsx')], outfile: join(outdir, 'app.js') }),
  ...LEGACY_VERSIONS.map((version) =>
    build({
      ...options,
      entryPoints: [join(here, 'legacy.jsx')],
      outfile: join(outdir, `legacy-${version}.js`),
      alias: { 'legacy-react-component': `engagespot-react-component-${version}` },
    }),
  ),
]);
copyFileSync(join(here, 'index.html'), join(outdir, 'index.html'));
for (const version of LEGACY_VERSIONS) {
  const html = page
    .replace('(React component)', `(React component ${version})`)
    .replace('src="app.js"', `src="legacy-${version}.js"`);
  writeFileSync(join(outdir, `legacy-${version}.html`), html);
}
