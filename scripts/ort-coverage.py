#!/usr/bin/env python3
"""Measure the GPU kernel coverage of official `onnxruntime-gpu` wheels.

Writes crates/gpulibs-sources/data/ort-coverage.json, the table `gpulibs-sources` embeds so that
the planner can choose an official ONNX Runtime release without downloading ~250 MB per release
first. For each release it:

1. asks pip (`pip install --dry-run --report`, same platform and Python tags as gpulibs uses at
   plan time) for the `onnxruntime-gpu` and `onnxruntime` wheels, their file names and sha256;
2. downloads them with `pip download` into a cache
   (`${XDG_CACHE_HOME:-~/.cache}/gpulibs/ort-coverage`), re-using a cached file whose sha256
   matches;
3. extracts only `onnxruntime/capi/libonnxruntime_providers_cuda.so` and the wheel's METADATA;
4. runs `gpulibs inspect --json` on the provider library: SASS targets, PTX targets with their
   ISA, how their payloads are compressed (`none`, `lz4`, `zstd`), `DT_NEEDED` (the CUDA major comes from `libcudart.so.N`) and names loaded at run time;
5. reads the `cuda` / `cudnn` extras from METADATA (`Requires-Dist: ...; extra == "cuda"`) and
   resolves them with pip, dependencies included, to record the `nvidia-*` wheel closure as it
   resolves today (name, version, file name, sha256, size, requirements).

Everything goes through `pip`, so the user's pip configuration (index, mirrors, certificates)
applies; no index host is named here.

Usage:
    cargo build --release -p gpulibs-cli
    scripts/ort-coverage.py                       # latest patch of every minor from 1.20 on
    scripts/ort-coverage.py --versions 1.23.2,1.31.1
    scripts/ort-coverage.py --keep-wheels         # keep the big wheels in the cache
    scripts/ort-coverage.py --update-compression DIR   # add `compression` to the table from
                                                  # the recorded wheels (sha256-checked) in DIR

Requires python3 >= 3.8 with pip >= 22.2 (for --report).
"""

import argparse
import datetime
import email.parser
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates/gpulibs-sources/data/ort-coverage.json"
PROVIDER = "onnxruntime/capi/libonnxruntime_providers_cuda.so"

# Keep in sync with gpulibs_sources::pypi::WheelTarget::default() (a test checks the table
# against it): the tags the wheels are resolved for.
PYTHON_VERSION = "3.11"
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
]
EXTRAS = ["cuda", "cudnn"]
SCHEMA_VERSION = 1


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pip_base():
    return [sys.executable, "-m", "pip"]


def tag_args():
    args = ["--only-binary=:all:"]
    for p in PLATFORMS:
        args += ["--platform", p]
    args += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    return args


def pip_report(requirements, deps):
    """The `install` entries of pip's dry-run report for `requirements`."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = pip_base() + [
            "install", "--dry-run", "--ignore-installed", "--quiet",
            "--report", "-", "--target", os.path.join(tmp, "target"),
        ]
        if not deps:
            cmd.append("--no-deps")
        cmd += tag_args() + list(requirements)
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
        out = done.stdout
    return json.loads(out)["install"]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_facts(entry):
    info = entry["download_info"]
    archive = info.get("archive_info", {})
    sha = archive.get("hashes", {}).get("sha256")
    if sha is None and archive.get("hash", "").startswith("sha256="):
        sha = archive["hash"].split("=", 1)[1]
    return {
        "name": entry["metadata"]["name"],
        "version": entry["metadata"]["version"],
        "filename": info["url"].rsplit("/", 1)[-1].split("#", 1)[0],
        "sha256": sha,
        "requires_dist": entry["metadata"].get("requires_dist") or [],
    }


def fetch(facts, cache):
    """The cached wheel for `facts`, downloaded with pip when missing or stale."""
    path = cache / facts["filename"]
    if path.exists() and sha256_of(path) == facts["sha256"]:
        return path
    log(f"  downloading {facts['filename']}")
    subprocess.run(
        pip_base() + ["download", "--no-deps", "--quiet", "-d", str(cache)] + tag_args()
        + [f"{facts['name']}=={facts['version']}"],
        check=True,
    )
    if sha256_of(path) != facts["sha256"]:
        sys.exit(f"sha256 mismatch for {path}")
    return path


def release_versions(spec):
    if spec:
        return [v.strip() for v in spec.split(",") if v.strip()]
    out = subprocess.run(
        pip_base() + ["index", "versions", "onnxruntime-gpu"] + tag_args(),
        check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("Available versions:"))
    latest = {}
    for v in line.split(":", 1)[1].split(","):
        v = v.strip()
        if not re.fullmatch(r"\d+\.\d+\.\d+", v):
            continue  # pre-releases and odd versions are not measured
        major, minor, patch = map(int, v.split("."))
        if (major, minor) < (1, 20):
            continue
        key = (major, minor)
        if key not in latest or patch > latest[key][2]:
            latest[key] = (major, minor, patch)
    return [".".join(map(str, latest[k])) for k in sorted(latest)]


def extras_requirements(metadata_text):
    """`Requires-Dist` entries of the cuda/cudnn extras, marker stripped, in file order."""
    msg = email.parser.Parser().parsestr(metadata_text)
    found = []
    for req in msg.get_all("Requires-Dist") or []:
        if ";" not in req:
            continue
        spec, marker = (s.strip() for s in req.split(";", 1))
        m = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
        if m and m.group(1) in EXTRAS:
            found.append({"extra": m.group(1), "requirement": spec})
    return found


def inspect(gpulibs, library):
    out = subprocess.run(
        [str(gpulibs), "inspect", "--json", "--gpu", "5.2", str(library)],
        stdout=subprocess.PIPE, text=True,
    ).stdout  # exit 3 (no kernel for 5.2, or missing CUDA libs here) is expected
    report = json.loads(out)["files"][0]
    ptx = [
        {"target": k["target"], "isa": k["ptx_isa"]}
        for k in report["kernels"] if k["kind"] == "ptx"
    ]
    deps = report.get("dependencies") or {}
    dynamic = deps.get("dynamic") or {}
    cuda_name = re.compile(r"^lib(cu|nv|cudnn)")
    needed = dynamic.get("needed", [])
    runtime = sorted({
        r["name"] for r in dynamic.get("runtime_names", []) if cuda_name.match(r["name"])
    })
    majors = [int(n.rsplit(".", 1)[1]) for n in needed if re.fullmatch(r"libcudart\.so\.\d+", n)]
    # How the SASS/PTX payloads are stored: `zstd` needs a driver of CUDA 12.4 (R550) or newer
    # (docs/driver-rules.md, rule fatbin-zstd).
    compression = sorted({
        c for k in report["kernels"] if k["kind"] in ("sass", "ptx") for c in k["compression"]
    })
    return {
        "cuda_major": majors[0] if majors else None,
        "compression": compression,
        "sass": sorted(report["sass_targets"], key=arch_key),
        "ptx": sorted(ptx, key=lambda p: arch_key(p["target"])),
        "needed": [n for n in needed if cuda_name.match(n)],
        "loaded_at_run_time": runtime,
        "provider_size": report["size"],
    }


def arch_key(target):
    m = re.search(r"(\d+)", target)
    return (int(m.group(1)) if m else 0, target)


LIBRARY = re.compile(r"(?:.*/)?lib[^/]*\.so(?:\.[0-9]+)*")


def dynamic(path):
    """`DT_SONAME` and `DT_NEEDED` of an ELF file, read with binutils' readelf."""
    out = subprocess.run(
        ["readelf", "-d", "-W", str(path)], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    return (m.group(1) if m else None), needed


def wheel_libraries(path):
    """The shared libraries a wheel holds: path in the wheel, DT_SONAME, uncompressed size."""
    libs = []
    with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
        for info in z.infolist():
            if info.is_dir() or not LIBRARY.fullmatch(info.filename):
                continue
            extracted = z.extract(info, tmp)
            soname, needed = dynamic(extracted)
            libs.append({
                "path": info.filename,
                "soname": soname,
                "needed": needed,
                "size": info.file_size,
                "sha256": sha256_of(extracted),
            })
            os.unlink(extracted)
    return sorted(libs, key=lambda l: l["path"])


def unpacked_size(path):
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist())


def wheel_record(facts, path):
    return {
        "name": facts["name"],
        "version": facts["version"],
        "filename": facts["filename"],
        "sha256": facts["sha256"],
        "size": path.stat().st_size,
        "unpacked_size": unpacked_size(path),
        "libraries": wheel_libraries(path),
    }


def measure(version, gpulibs, cache, keep, nvidia_seen):
    log(f"onnxruntime-gpu {version}")
    gpu = entry_facts(pip_report([f"onnxruntime-gpu=={version}"], deps=False)[0])
    wheel = fetch(gpu, cache)
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        meta_name = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        metadata = z.read(meta_name).decode()
        # Absent before 1.21: the build CUDA is then unknown (null), not guessed.
        build_name = "onnxruntime/capi/build_and_package_info.py"
        build_info = z.read(build_name).decode() if build_name in z.namelist() else ""
        z.extract(PROVIDER, tmp)
        kernels = inspect(gpulibs, Path(tmp) / PROVIDER)
    record = {"version": version, "wheel": wheel_record(gpu, wheel)}
    if not keep:
        wheel.unlink()
    record.update(kernels)
    m = re.search(r"^cuda_version\s*=\s*['\"]([0-9.]+)['\"]", build_info, re.M)
    record["build_cuda"] = m.group(1) if m else None
    requirements = extras_requirements(metadata)
    record["requirements"] = requirements

    # The CPU package has its own patch releases (1.20.1 CPU beside 1.20.2 GPU): take the
    # newest of the same minor that is not newer than the GPU release.
    major, minor = version.split(".")[:2]
    cpu_req = f"onnxruntime>={major}.{minor}.0,<={version}"
    cpu = entry_facts(pip_report([cpu_req], deps=False)[0])
    cpu_wheel = fetch(cpu, cache)
    record["cpu_wheel"] = wheel_record(cpu, cpu_wheel)

    closure = []
    record["extras_error"] = None
    entries = []
    if requirements:
        try:
            entries = pip_report([r["requirement"] for r in requirements], deps=True)
        except subprocess.CalledProcessError as e:
            # 1.27.0 names `nvidia-*-cu13` distributions that exist only as placeholders:
            # its extras cannot be installed. Recorded, not papered over.
            lines = [l for l in (e.stderr or "").splitlines() if l.startswith("ERROR:")]
            record["extras_error"] = lines[-1] if lines else str(e)
            log(f"  extras do not resolve: {record['extras_error']}")
    if entries:
        for entry in entries:
            facts = entry_facts(entry)
            if facts["filename"] not in nvidia_seen:
                path = fetch(facts, cache)
                nvidia_seen[facts["filename"]] = wheel_record(facts, path)
                nvidia_seen[facts["filename"]]["requires_dist"] = facts["requires_dist"]
                if not keep:
                    path.unlink()
            closure.append(nvidia_seen[facts["filename"]])
    record["nvidia_wheels"] = closure
    return record


def update_compression(gpulibs, out, wheel_dir):
    """Adds the `compression` of each release of an existing table, measured on the very wheel
    the table records (file name and sha256 checked), without resolving anything again."""
    table = json.loads(Path(out).read_text())
    for release in table["releases"]:
        wheel = release["wheel"]
        path = Path(wheel_dir) / wheel["filename"]
        if not path.exists() or sha256_of(path) != wheel["sha256"]:
            sys.exit(f"{path}: missing or not the measured wheel (sha256 {wheel['sha256']})")
        with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
            z.extract(PROVIDER, tmp)
            release["compression"] = inspect(gpulibs, Path(tmp) / PROVIDER)["compression"]
        log(f"onnxruntime-gpu {release['version']}: {release['compression']}")
    Path(out).write_text(json.dumps(table, indent=1) + "\n")
    log(f"updated {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", help="comma-separated releases (default: see above)")
    ap.add_argument("--gpulibs", default=str(REPO / "target/release/gpulibs"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--keep-wheels", action="store_true")
    ap.add_argument(
        "--update-compression", metavar="WHEEL_DIR",
        help="only add `compression` to the existing table, from the recorded wheels in WHEEL_DIR",
    )
    args = ap.parse_args()

    gpulibs = Path(args.gpulibs)
    if not gpulibs.exists():
        sys.exit(f"{gpulibs} not found: run `cargo build --release -p gpulibs-cli` first")
    if args.update_compression:
        update_compression(gpulibs, args.out, args.update_compression)
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpulibs/ort-coverage"
    cache.mkdir(parents=True, exist_ok=True)

    nvidia_seen = {}
    releases = [
        measure(v, gpulibs, cache, args.keep_wheels, nvidia_seen)
        for v in release_versions(args.versions)
    ]
    pip_version = subprocess.run(
        pip_base() + ["--version"], stdout=subprocess.PIPE, text=True, check=True
    ).stdout.split()[1]
    table = {
        "schema_version": SCHEMA_VERSION,
        "measured": datetime.date.today().isoformat(),
        "measured_with": {"pip": pip_version, "script": "scripts/ort-coverage.py"},
        "python_version": PYTHON_VERSION,
        "implementation": "cp",
        "platforms": PLATFORMS,
        "provider_library": PROVIDER,
        "releases": releases,
    }
    Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
    log(f"wrote {args.out} ({len(releases)} releases)")


if __name__ == "__main__":
    main()
