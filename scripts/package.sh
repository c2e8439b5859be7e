#!/usr/bin/env bash
# Builds the extension package: dist/<publisher>.<id>-<version>.vsix.
#
#   scripts/package.sh [--targets t1,t2,...] [--out DIR] [--compress auto|always|never]
#                      [--prebuilt DIR] [--build-only DIR]
#
#   --targets     Rust target triples to build (default: the host). With --prebuilt, the
#                 platforms to require, as triples or as platform names (linux-x64, ...);
#                 default: every platform folder found in the prebuilt folder.
#   --out         where the .vsix goes (default: dist)
#   --compress    brotli-compress the binaries inside the package (the launcher expands them
#                 on first run): always, never, or auto (default) = only if the package would
#                 otherwise exceed the Marketplace limit of 26,214,400 bytes.
#   --prebuilt    take the binaries from DIR/<platform>/<binary>[.exe] instead of building
#                 (the release pipeline builds each platform on its own agent).
#   --build-only  build, copy the binaries to DIR/<platform>/ and stop (the pipeline's build
#                 jobs; the layout is the one --prebuilt reads).
#
# Conventions (documented here because this script is where they are enforced):
#   - A task is a folder task-manifests/<folder>/ with task.json (+ icon.png). Its binary is
#     the bin target of a crate in crates/tasks/* whose name, without dashes, is the folder
#     name: deploy-notebooks -> deploynotebooks. A task crate without a task folder is skipped
#     with a warning; a task folder without a crate is an error.
#   - vss-extension.json must have one contribution and one `files` entry per task folder.
#   - Package layout of a task folder: task.json (version-stamped), icon.png, launcher.js
#     (from launcher/), launcher.json ({"binary": "<name>"}: which binary the launcher runs),
#     bin/<platform>/<binary>[.exe|.br]. Platforms use Node's names (process.platform-arch).
#   - Version: `[workspace.package] version` in Cargo.toml is the one source; it is stamped
#     into the staged copies only (mapping: scripts/stamp-version.js).
#   - Staging folder: <cargo target dir>/vsix-stage (rebuilt from scratch on every run).
#   - Build: `cargo build --profile vsix --no-default-features` (no TLS inside: the launcher's
#     tunnel provides it), into <cargo target dir>/vsix (<target dir>/<triple>/vsix when cross-
#     compiling): never target/release, whose development builds keep their TLS.
#
# Needs: cargo, node (>= 20) and npm; python3 for the final check of the .vsix.
set -euo pipefail

readonly SIZE_LIMIT=26214400
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() {
  echo "package.sh: error: $*" >&2
  exit 1
}
note() { echo "package.sh: $*" >&2; }

usage() {
  sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

targets=""
out="dist"
compress="auto"
prebuilt=""
build_only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --targets) targets="${2:?--targets needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --compress) compress="${2:?--compress needs a value}"; shift 2 ;;
    --prebuilt) prebuilt="${2:?--prebuilt needs a folder}"; shift 2 ;;
    --build-only) build_only="${2:?--build-only needs a folder}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$compress" in auto | always | never) ;; *) die "--compress must be auto, always or never" ;; esac
[[ -n "$prebuilt" && -n "$build_only" ]] && die "--prebuilt and --build-only exclude each other"

# Windows (Git Bash) paths from cargo come as C:\...; make them usable here.
to_unix_path() {
  if command -v cygpath >/dev/null 2>&1; then cygpath -u "$1"; else printf '%s\n' "$1"; fi
}

# Folders given on the command line, in the form the shell's tools take.
out="$(to_unix_path "$out")"
[[ -n "$prebuilt" ]] && prebuilt="$(to_unix_path "$prebuilt")"
[[ -n "$build_only" ]] && build_only="$(to_unix_path "$build_only")"

# The bin/ folder name (Node's process.platform-process.arch) of a Rust target triple.
platform_of() {
  case "$1" in
    linux-x64 | linux-arm64 | win32-x64 | win32-arm64 | darwin-x64 | darwin-arm64) echo "$1" ;;
    x86_64-*-linux-*) echo linux-x64 ;;
    aarch64-*-linux-*) echo linux-arm64 ;;
    x86_64-pc-windows-*) echo win32-x64 ;;
    aarch64-pc-windows-*) echo win32-arm64 ;;
    x86_64-apple-darwin) echo darwin-x64 ;;
    aarch64-apple-darwin) echo darwin-arm64 ;;
    *) die "no package platform for target $1 (known: linux x64/arm64, windows x64/arm64, macOS x64/arm64)" ;;
  esac
}

exe_suffix() { case "$1" in win32-*) echo .exe ;; *) echo "" ;; esac; }

# --- What to package: task folders, their binaries, the manifest ---------------------------

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
metadata="$scratch/metadata.json"
cargo metadata --format-version 1 --no-deps >"$metadata"
target_dir="$(to_unix_path "$(node -e 'console.log(require(process.argv[1]).target_directory)' "$metadata")")"

# Lines "<folder> <binary> <package>" for every task folder; errors for folders without crates.
task_table="$(
  node - "$ROOT" "$metadata" <<'NODE'
const fs = require('fs');
const path = require('path');
const [root, metadataFile] = process.argv.slice(2);
const metadata = JSON.parse(fs.readFileSync(metadataFile, 'utf8'));
const binaries = new Map(); // folder name -> {binary, pkg}
for (const pkg of metadata.packages) {
  if (!/[\\/]crates[\\/]tasks[\\/][^\\/]+[\\/]Cargo\.toml$/.test(pkg.manifest_path)) continue;
  for (const target of pkg.targets) {
    if (!target.kind.includes('bin')) continue;
    binaries.set(target.name.replace(/-/g, ''), { binary: target.name, pkg: pkg.name });
  }
}
const manifests = path.join(root, 'task-manifests');
const folders = fs.existsSync(manifests)
  ? fs.readdirSync(manifests).filter((f) => fs.existsSync(path.join(manifests, f, 'task.json'))).sort()
  : [];
if (folders.length === 0) {
  console.error('package.sh: error: no task-manifests/*/task.json: nothing to package');
  process.exit(1);
}
let bad = false;
for (const folder of folders) {
  const found = binaries.get(folder);
  if (!found) {
    console.error(`package.sh: error: task-manifests/${folder} has no crate in crates/tasks/ whose binary, without dashes, is "${folder}"`);
    bad = true;
    continue;
  }
  console.log(`${folder} ${found.binary} ${found.pkg}`);
  binaries.delete(folder);
}
for (const [, { binary }] of binaries) {
  console.error(`package.sh: warning: task crate binary ${binary} has no task-manifests/${binary.replace(/-/g, '')}/task.json; not packaged`);
}
process.exit(bad ? 1 : 0);
NODE
)" || exit 1

# The manifest must list exactly these task folders, as contributions and as files.
# shellcheck disable=SC2046 # one argument per folder name; names have no spaces
node - "$ROOT/vss-extension.json" $(cut -d' ' -f1 <<<"$task_table") <<'NODE' || die "vss-extension.json does not match task-manifests/ (see above)"
const fs = require('fs');
const [file, ...folders] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
const tasks = (manifest.contributions || [])
  .filter((c) => c.type === 'ms.vss-distributed-task.task')
  .map((c) => c.properties && c.properties.name);
const files = new Set((manifest.files || []).map((f) => f.path));
let ok = true;
const report = (msg) => { console.error(`package.sh: error: ${msg}`); ok = false; };
for (const folder of folders) {
  if (!tasks.includes(folder)) report(`no task contribution with properties.name "${folder}"`);
  if (!files.has(folder)) report(`no files entry {"path": "${folder}"}`);
}
for (const name of tasks) if (!folders.includes(name)) report(`contribution "${name}" has no task-manifests/${name}/task.json`);
for (const key of ['publisher', 'id']) if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(manifest[key] || '')) report(`bad or missing "${key}"`);
process.exit(ok ? 0 : 1);
NODE

version="$(node scripts/stamp-version.js version Cargo.toml)" || die "cannot read the workspace version"
read -r publisher extension_id < <(node -e 'const m = require(process.argv[1]); console.log(m.publisher, m.id)' "$ROOT/vss-extension.json")

# --- Binaries ---------------------------------------------------------------------------

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_root=""      # folder with <platform>/<binary> for every platform to package
platforms=()

build_binaries() { # $1: destination folder (gets <platform>/<binary>)
  local dest="$1" t plat src_dir folder binary pkg
  local -a packages=()
  # Each task crate once (two task folders may share one: startcluster's binary is a second
  # [[bin]] of databricks-command).
  while read -r folder binary pkg; do packages+=("$pkg"); done <<<"$task_table"
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  IFS=',' read -r -a target_list <<<"${targets:-$host}"
  for t in "${target_list[@]}"; do
    plat="$(platform_of "$t")"
    local -a target_args=(--target "$t")
    # Cargo profile `vsix` (Cargo.toml): the release settings in a folder of its own, so
    # packaging never replaces the development builds (TLS inside) in target/release.
    src_dir="$target_dir/$t/vsix"
    if [[ "$t" == "$host" ]]; then
      target_args=()
      src_dir="$target_dir/vsix"
    fi
    local rustflags="${RUSTFLAGS:-}"
    # No dependency on the Visual C++ runtime being installed on a self-hosted agent.
    [[ "$t" == *-windows-msvc ]] && rustflags="$rustflags -C target-feature=+crt-static"
    note "building ${#packages[@]} task crates for $t"
    # Without default features: no TLS inside the binaries; the launcher's tunnel provides
    # it (crates/http/src/connect.rs says why: about 950 KB per binary).
    # One cargo run per task crate: cargo unifies features across the packages of one run, so
    # a joint build gives every binary what any task's dependencies turn on (azure-blob's
    # Azure SDK turns on tokio's multi-thread scheduler: 4-5 KB brotli in every binary,
    # BENCHMARKS.md). Shared dependencies with the same features are still built once.
    for pkg in "${packages[@]}"; do
      RUSTFLAGS="$rustflags" cargo build --profile vsix --locked --no-default-features \
        "${target_args[@]}" -p "$pkg" >&2
    done
    mkdir -p "$dest/$plat"
    while read -r folder binary pkg; do
      cp "$src_dir/$binary$(exe_suffix "$plat")" "$dest/$plat/"
    done <<<"$task_table"
    platforms+=("$plat")
  done
}

if [[ -n "$build_only" ]]; then
  build_binaries "$build_only"
  note "binaries for ${platforms[*]} in $build_only"
  exit 0
fi

if [[ -n "$prebuilt" ]]; then
  [[ -d "$prebuilt" ]] || die "--prebuilt $prebuilt is not a folder"
  bin_root="$(cd "$prebuilt" && pwd)"
  if [[ -n "$targets" ]]; then
    IFS=',' read -r -a target_list <<<"$targets"
    for t in "${target_list[@]}"; do platforms+=("$(platform_of "$t")"); done
  else
    for d in "$bin_root"/*/; do
      d="$(basename "$d")"
      case "$d" in linux-x64 | linux-arm64 | win32-x64 | win32-arm64 | darwin-x64 | darwin-arm64) platforms+=("$d") ;; esac
    done
  fi
  [[ ${#platforms[@]} -gt 0 ]] || die "no platform folders (linux-x64, win32-x64, ...) in $prebuilt"
else
  bin_root="$target_dir/vsix-bin"
  rm -rf "$bin_root"
  build_binaries "$bin_root"
fi

# Every (task, platform) binary must be there before anything is staged.
while read -r folder binary pkg; do
  for plat in "${platforms[@]}"; do
    f="$bin_root/$plat/$binary$(exe_suffix "$plat")"
    [[ -f "$f" ]] || die "missing binary $f"
  done
done <<<"$task_table"

# --- Staging ------------------------------------------------------------------------------

stage="$target_dir/vsix-stage"
rm -rf "$stage"
mkdir -p "$stage"
# The Marketplace page: vss-extension.json content.details (overview.md, written for users).
details="$(node -e 'const m = require(process.argv[1]); console.log((m.content && m.content.details && m.content.details.path) || "")' "$ROOT/vss-extension.json")"
[[ -n "$details" ]] || die "vss-extension.json has no content.details.path (the Marketplace page)"
[[ -f "$details" ]] || die "$details is missing (vss-extension.json content.details)"
cp "$details" "$stage/"
[[ -f LICENSE ]] && cp LICENSE "$stage/"
cp -R images "$stage/images"
cp vss-extension.json "$stage/vss-extension.json"
node scripts/stamp-version.js extension "$stage/vss-extension.json" "$version"

while read -r folder binary pkg; do
  dir="$stage/$folder"
  cp -R "task-manifests/$folder" "$dir"
  task_version="$(node scripts/stamp-version.js task "$dir/task.json" "$version")"
  cp launcher/launcher.js "$dir/launcher.js"
  printf '{"binary":"%s"}\n' "$binary" >"$dir/launcher.json"
  for plat in "${platforms[@]}"; do
    mkdir -p "$dir/bin/$plat"
    cp "$bin_root/$plat/$binary$(exe_suffix "$plat")" "$dir/bin/$plat/"
  done
  note "staged $folder $task_version ($binary for ${platforms[*]})"
done <<<"$task_table"

# Brotli at the highest quality with a 16 MiB window: slow to pack, fast to unpack.
compress_stage() {
  note "compressing binaries with brotli"
  find "$stage" -path '*/bin/*' -type f ! -name '*.br' -print0 | node -e '
    const fs = require("fs"), zlib = require("zlib");
    const files = fs.readFileSync(0, "utf8").split("\0").filter(Boolean);
    for (const file of files) {
      const packed = zlib.brotliCompressSync(fs.readFileSync(file), { params: {
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_GENERIC,
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: fs.statSync(file).size } });
      fs.writeFileSync(file + ".br", packed);
      fs.rmSync(file);
    }'
}

# --- Package and check ----------------------------------------------------------------------

if [[ ! -x node_modules/.bin/tfx ]]; then
  note "installing the pinned tfx-cli (npm ci)"
  npm ci --no-audit --no-fund >&2
fi

mkdir -p "$out"
vsix="$(cd "$out" && pwd)/$publisher.$extension_id-$version.vsix"

create_vsix() {
  rm -f "$vsix"
  node_modules/.bin/tfx extension create --root "$stage" --manifests vss-extension.json \
    --output-path "$vsix" --no-prompt --no-color >&2
  [[ -f "$vsix" ]] || die "tfx wrote no $vsix"
}

vsix_size() { wc -c <"$vsix" | tr -d ' '; }

[[ "$compress" == always ]] && compress_stage
create_vsix
if [[ "$compress" == auto && "$(vsix_size)" -gt "$SIZE_LIMIT" ]]; then
  note "$(vsix_size) bytes is over the limit; packing the binaries with brotli"
  compress_stage
  create_vsix
fi

python3 - "$vsix" "$version" "$publisher" "$extension_id" "$SIZE_LIMIT" "$details" "${platforms[@]}" <<'PY'
"""Checks a .vsix the way the Marketplace and the agent will read it."""
import json
import re
import sys
import zipfile

vsix, version, publisher, ext_id, limit, details, *platforms = sys.argv[1:]
limit = int(limit)
errors = []

with zipfile.ZipFile(vsix) as z:
    names = set(z.namelist())
    for required in ("[Content_Types].xml", "extension.vsixmanifest", "extension.vsomanifest"):
        if required not in names:
            errors.append(f"{required} missing")
    vsixmanifest = z.read("extension.vsixmanifest").decode("utf-8-sig")
    identity = re.search(r"<Identity\b[^>]*>", vsixmanifest)
    for attr, want in (("Id", ext_id), ("Version", version), ("Publisher", publisher)):
        if not identity or f'{attr}="{want}"' not in identity.group(0):
            errors.append(f"extension.vsixmanifest Identity {attr} is not {want}")
    # The Marketplace shows the Details asset as the extension's page.
    detail_asset = re.search(r'<Asset\b[^>]*Type="Microsoft\.VisualStudio\.Services\.Content\.Details"[^>]*>', vsixmanifest)
    if not detail_asset or f'Path="{details}"' not in detail_asset.group(0):
        errors.append(f"extension.vsixmanifest does not name {details} as the Details asset")
    if details not in names:
        errors.append(f"{details} (the Marketplace page) is not in the package")
    contributions = json.loads(z.read("extension.vsomanifest").decode("utf-8-sig"))["contributions"]
    tasks = [c for c in contributions if c.get("type") == "ms.vss-distributed-task.task"]
    if not tasks:
        errors.append("no task contributions")
    major, minor, patch = (int(p) for p in version.split("."))
    for contribution in tasks:
        folder = contribution["properties"]["name"]
        def has(rel):
            return f"{folder}/{rel}" in names
        if not has("task.json"):
            errors.append(f"{folder}/task.json missing")
            continue
        task = json.loads(z.read(f"{folder}/task.json").decode("utf-8-sig"))
        v = task.get("version", {})
        if (v.get("Minor"), v.get("Patch")) != (minor, patch):
            errors.append(f"{folder}/task.json version {v} is not stamped with {version}")
        execution = task.get("execution") or {}
        if not ({"Node20_1", "Node24"} & set(execution)):
            errors.append(f"{folder}/task.json has no Node20_1/Node24 handler (Linux/macOS agents run only Node handlers)")
        for handler, spec in execution.items():
            if not has(spec.get("target", "")):
                errors.append(f"{folder}: {handler} target {spec.get('target')!r} is not in the package")
        for rel in ("launcher.js", "launcher.json"):
            if not has(rel):
                errors.append(f"{folder}/{rel} missing")
        if not has("icon.png"):
            print(f"package.sh: warning: {folder}/icon.png missing", file=sys.stderr)
        if not has("launcher.json"):
            continue
        binary = json.loads(z.read(f"{folder}/launcher.json"))["binary"]
        for plat in platforms:
            plain = f"bin/{plat}/{binary}" + (".exe" if plat.startswith("win32") else "")
            if not (has(plain) or has(plain + ".br")):
                errors.append(f"{folder}/{plain} missing")

for e in errors:
    print(f"package.sh: check failed: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

size="$(vsix_size)"
echo "$vsix"
note "$(basename "$vsix"): $size bytes ($((size * 100 / SIZE_LIMIT))% of the $SIZE_LIMIT-byte Marketplace limit), platforms: ${platforms[*]}"
[[ "$size" -le "$SIZE_LIMIT" ]] || die "the package is over the Marketplace limit of $SIZE_LIMIT bytes"
