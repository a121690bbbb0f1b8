"use strict";
// Finds the gpulibs binary of this platform's package (esbuild's pattern: the main package lists one
// optional dependency per platform, and npm installs only the one whose `os`/`cpu`/`libc` fit).
const fs = require("fs");
const path = require("path");

// `${process.platform}-${process.arch}` -> the package that carries the binary for it.
const PLATFORM_PACKAGES = {
  "linux-x64": "gpulibs-linux-x64",
  "linux-arm64": "gpulibs-linux-arm64",
};
// The glibc the binaries are built for (manylinux2014).
const MIN_GLIBC = [2, 17];

function platformKey() {
  return `${process.platform}-${process.arch}`;
}

// The running glibc ("2.31"), or null on musl and other libcs. Node reports it in its diagnostic
// report header on glibc systems only.
function glibcVersion() {
  if (process.platform !== "linux" || !process.report || !process.report.getReport) return undefined;
  const header = process.report.getReport().header || {};
  return header.glibcVersionRuntime || null;
}

function glibcTooOld(version) {
  const [major, minor] = String(version).split(".").map(Number);
  return major < MIN_GLIBC[0] || (major === MIN_GLIBC[0] && minor < MIN_GLIBC[1]);
}

class GpulibsBinaryError extends Error {}

// The absolute path of the gpulibs binary for this machine, or a GpulibsBinaryError that names the
// platform and the fix. GPULIBS_BINARY_PATH overrides the lookup (a binary built from source).
function binaryPath() {
  const override = process.env.GPULIBS_BINARY_PATH;
  if (override) {
    if (!fs.existsSync(override)) {
      throw new GpulibsBinaryError(
        `GPULIBS_BINARY_PATH is set to ${override}, which does not exist: point it at a gpulibs binary or unset it`
      );
    }
    return override;
  }
  const key = platformKey();
  const pkg = PLATFORM_PACKAGES[key];
  if (!pkg) {
    throw new GpulibsBinaryError(
      `gpulibs has no prebuilt binary for this platform (${key}); there are binaries for ` +
        `${Object.keys(PLATFORM_PACKAGES).join(" and ")} (glibc >= ${MIN_GLIBC.join(".")}). ` +
        `Build it from source (cargo build --release --locked -p gpulibs-cli) and set GPULIBS_BINARY_PATH to it.`
    );
  }
  const glibc = glibcVersion();
  if (glibc === null) {
    throw new GpulibsBinaryError(
      `gpulibs needs glibc >= ${MIN_GLIBC.join(".")} and this ${key} system has another C library (musl?): ` +
        `gpulibs loads ONNX Runtime and NVML, which are built against glibc. Use a glibc-based system or image.`
    );
  }
  if (glibc && glibcTooOld(glibc)) {
    throw new GpulibsBinaryError(
      `gpulibs needs glibc >= ${MIN_GLIBC.join(".")}; this ${key} system has glibc ${glibc}.`
    );
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch (e) {
    throw new GpulibsBinaryError(
      `gpulibs: the package with the binary for this platform (${key}), ${pkg}, is not installed. ` +
        `It is an optional dependency of gpulibs: install again without --no-optional / --omit=optional ` +
        `(or add ${pkg} to your dependencies), with the same version as gpulibs.`
    );
  }
  const bin = path.join(dir, "bin", "gpulibs");
  if (!fs.existsSync(bin)) {
    throw new GpulibsBinaryError(`gpulibs: ${pkg} is installed at ${dir} but has no bin/gpulibs: reinstall it`);
  }
  return bin;
}

module.exports = { binaryPath, platformKey, PLATFORM_PACKAGES, GpulibsBinaryError };
