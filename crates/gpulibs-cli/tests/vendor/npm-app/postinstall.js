#!/usr/bin/env node
// postinstall: install the GPU libraries this app runs on, with gpulibs.
//
//   gpulibs install --app NAME --manifest URL --public-key KEY
//
// NAME, URL and KEY come from the "gpulibs" field of package.json. The gpulibs binary is
// $GPULIBS_BIN when set, else bin/gpulibs shipped in this package, else `gpulibs` on PATH.
// gpulibs' own output (progress, errors and their fixes) goes straight to the terminal, and
// its exit status becomes this script's, so `npm install` fails when gpulibs does.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const pkg = require('./package.json');
const cfg = pkg.gpulibs || {};
for (const field of ['app', 'manifest', 'publicKey']) {
  if (!cfg[field]) {
    console.error(`${pkg.name} postinstall: package.json has no gpulibs.${field}`);
    process.exit(1);
  }
}

function gpulibsBinary() {
  if (process.env.GPULIBS_BIN) return process.env.GPULIBS_BIN;
  const shipped = path.join(__dirname, 'bin', 'gpulibs');
  if (fs.existsSync(shipped)) return shipped;
  return 'gpulibs';
}

const bin = gpulibsBinary();
const args = ['install', '--app', cfg.app, '--manifest', cfg.manifest, '--public-key', cfg.publicKey];
console.error(`${pkg.name} postinstall: ${bin} ${args.join(' ')}`);
const run = spawnSync(bin, args, { stdio: 'inherit' });
if (run.error) {
  console.error(`${pkg.name} postinstall: could not run ${bin}: ${run.error.message}; ` +
    'set GPULIBS_BIN or put gpulibs on PATH');
  process.exit(127);
}
// 0: installed or already up to date (on the GPU, or the CPU runtime, saying why).
// 3: nothing in the release runs here and it has no CPU variant: not an error for npm.
if (run.status === 3) {
  console.error(`${pkg.name} postinstall: no GPU libraries for this machine (see above); ` +
    'the app uses its own CPU runtime');
  process.exit(0);
}
if (run.status !== 0) {
  console.error(`${pkg.name} postinstall: gpulibs install failed (exit ${run.status}); ` +
    'the app keeps what was installed before, if anything');
}
process.exit(run.status === null ? 1 : run.status);
