// What the seed app's install script does with gpulibs' layout, as a consumer would:
// read the receipt, look for <gpu-libs>/libonnxruntime.so, build LD_LIBRARY_PATH and
// ORT_DYLIB_PATH as its systemd unit does, then load ONNX Runtime with that environment.
//
//   node seed-consumer.mjs NAME LOADER APP_LIB_DIR [LIBRARY...]
//
// NAME: the app (`--app NAME`); LOADER: a program that loads the library named by its first
// argument (the tests' load-ort.c) and then, by name through LD_LIBRARY_PATH, each LIBRARY;
// APP_LIB_DIR: the app's own library directory, as the seed puts it on LD_LIBRARY_PATH after
// gpu-libs. Prints one JSON object; exits 0 when ONNX Runtime loaded, 1 when the layout is not
// what the seed expects or loading failed.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const [name, loader, appLibDir, ...libraries] = process.argv.slice(2);
if (!name || !loader || !appLibDir) {
  console.error('usage: node seed-consumer.mjs NAME LOADER APP_LIB_DIR [LIBRARY...]');
  process.exit(2);
}
const configHome = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
const dataHome = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');

// 1. The receipt: the seed reads the variant (and the rest) from it.
const receiptPath = join(configHome, name, 'gpu-package-info.json');
const receipt = JSON.parse(readFileSync(receiptPath, 'utf8'));
for (const field of ['variant', 'architectures', 'smVersion', 'computeCap', 'gpuName', 'version', 'libsPath', 'installedAt']) {
  if (!(field in receipt)) {
    console.log(JSON.stringify({ ok: false, why: `receipt has no ${field}`, receipt }));
    process.exit(1);
  }
}

// 2. The libraries: unversioned libonnxruntime.so directly in gpu-libs.
const gpuLibs = join(dataHome, name, 'gpu-libs');
const ortDylibPath = join(gpuLibs, 'libonnxruntime.so');
if (!existsSync(ortDylibPath)) {
  console.log(JSON.stringify({ ok: false, why: `${ortDylibPath} not found`, variant: receipt.variant }));
  process.exit(1);
}

// 3. The daemon's environment: gpu-libs, the app's own lib dir, CUDA toolkit dirs.
const dirs = [gpuLibs];
dirs.push(appLibDir);
try {
  for (const d of readdirSync('/usr/local').filter((d) => d.startsWith('cuda')).sort()) {
    const lib64 = join('/usr/local', d, 'lib64');
    if (existsSync(lib64)) dirs.push(lib64);
  }
} catch { /* no /usr/local: nothing to add */ }
const env = {
  ...process.env,
  LD_LIBRARY_PATH: dirs.join(':'),
  ORT_DYLIB_PATH: ortDylibPath,
};

// 4. Load ONNX Runtime through that environment.
const run = spawnSync(loader, [env.ORT_DYLIB_PATH, ...libraries], { env, encoding: 'utf8' });
console.log(JSON.stringify({
  ok: run.status === 0,
  variant: receipt.variant,
  libsPath: receipt.libsPath,
  ortDylibPath,
  ldLibraryPath: env.LD_LIBRARY_PATH,
  loader: { status: run.status, stdout: (run.stdout || '').trim(), stderr: (run.stderr || String(run.error || '')).trim() },
}));
process.exit(run.status === 0 ? 0 : 1);
