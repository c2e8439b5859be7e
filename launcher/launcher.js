#!/usr/bin/env node
// The task handler target of every task in this extension (task.json `execution`:
// Node20_1 and Node24 both point here). The agent runs `node <taskdir>/launcher.js`; this
// script finds the native binary of the task for this OS and CPU and runs it, and is
// otherwise invisible: environment, arguments, stdio, exit code and cancel signals pass
// straight through.
//
// What it is not: a task library. It must never load azure-pipelines-task-lib:
// loading that library deletes INPUT_*, SECRET_*, ENDPOINT_AUTH_* and friends from
// process.env, and the binary would never see its inputs (agent contract §1). It has no
// dependencies at all, so that a task folder is launcher.js + launcher.json + bin/.
//
// Layout of a task folder (written by scripts/package.sh):
//   launcher.js
//   launcher.json             {"binary": "deploy-notebooks"}
//   bin/<os>-<arch>/<binary>  for os-arch in linux-x64, linux-arm64, win32-x64, darwin-x64,
//                             darwin-arm64 (Node's process.platform-process.arch names);
//                             `.exe` added on win32. The binary may be stored brotli-
//                             compressed as `<binary>.br`; it is expanded on first run.
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');

const CONFIG_FILE = 'launcher.json';
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM'];

/** A failure the launcher reports to the agent as the task's error. */
class LauncherError extends Error {}

/** `linux-x64`, `win32-x64`, `darwin-arm64`…: the bin/ folder for a platform. */
function platformKey(platform, arch) {
  return `${platform}-${arch}`;
}

/** The binary's file name on a platform. */
function binaryFileName(binary, platform) {
  return platform === 'win32' ? `${binary}.exe` : binary;
}

/** Reads launcher.json next to the launcher: which binary this task runs. */
function readConfig(taskDir) {
  const file = path.join(taskDir, CONFIG_FILE);
  let config;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LauncherError(`cannot read ${file}: ${err.message}`);
  }
  // The name becomes a path component: keep it to a plain file name.
  if (!config || typeof config.binary !== 'string' || !/^[A-Za-z0-9._-]+$/.test(config.binary)) {
    throw new LauncherError(`${file} must hold {"binary": "<file name>"}`);
  }
  return config;
}

/** The platforms this task folder has binaries for (the names of the folders in bin/). */
function availablePlatforms(taskDir) {
  try {
    return fs
      .readdirSync(path.join(taskDir, 'bin'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
  } catch {
    return [];
  }
}

function exists(file) {
  try {
    fs.statSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the binary for a platform is, and whether it is stored compressed. Throws a
 * LauncherError naming the platforms the package has when this one is missing.
 */
function locateBinary(taskDir, binary, platform, arch) {
  const key = platformKey(platform, arch);
  const plain = path.join(taskDir, 'bin', key, binaryFileName(binary, platform));
  if (exists(plain)) return { path: plain, compressed: null };
  if (exists(`${plain}.br`)) return { path: plain, compressed: `${plain}.br` };
  const available = availablePlatforms(taskDir);
  const has = available.length > 0 ? available.join(', ') : 'none';
  throw new LauncherError(
    `this task has no ${binary} binary for ${key} (the agent's OS and CPU). ` +
      `This package has binaries for: ${has}. Run the job on an agent with one of those.`,
  );
}

function uniqueSuffix() {
  return `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * Writes `data` to `target` so that readers only ever see a whole file: write a temporary
 * file in the same folder, then rename it over the target. Concurrent first runs each
 * write their own temporary file; whichever rename lands, the content is the same.
 */
function writeAtomically(target, data) {
  const temp = `${target}.${uniqueSuffix()}.tmp`;
  try {
    fs.writeFileSync(temp, data, { mode: 0o755 });
    try {
      fs.renameSync(temp, target);
    } catch (err) {
      // Windows refuses to replace a file that another run is executing; that file is
      // the same content, so use it.
      if (!exists(target)) throw err;
      fs.rmSync(temp, { force: true });
    }
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

const READ_ONLY_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);

/** A cached file in a shared temp folder is trusted only if this user alone could write it. */
function isOwnedAndPrivate(file) {
  if (typeof process.getuid !== 'function') return true;
  const stat = fs.statSync(file);
  return stat.uid === process.getuid() && (stat.mode & 0o022) === 0;
}

/**
 * Expands `compressed` (brotli) into `target` and returns the path to run. If the task
 * folder is read-only, expands into os.tmpdir() under a name derived from the compressed
 * file's content hash, so runs of the same binary share one copy and different versions
 * never collide.
 */
function expandBrotli(compressed, target) {
  const packed = fs.readFileSync(compressed);
  let data;
  try {
    data = zlib.brotliDecompressSync(packed);
  } catch (err) {
    throw new LauncherError(`cannot expand ${compressed}: ${err.message}`);
  }
  try {
    writeAtomically(target, data);
    return target;
  } catch (err) {
    if (!READ_ONLY_CODES.has(err.code)) throw err;
  }
  const hash = crypto.createHash('sha256').update(packed).digest('hex').slice(0, 32);
  const cached = path.join(os.tmpdir(), `azdo-task-${hash}-${path.basename(target)}`);
  if (exists(cached) && isOwnedAndPrivate(cached)) return cached;
  if (exists(cached)) {
    // Someone else's file under our name: do not run it; use a private name.
    const own = `${cached}-${uniqueSuffix()}`;
    writeAtomically(own, data);
    return own;
  }
  writeAtomically(cached, data);
  return cached;
}

/**
 * Sets the executable bits (a .vsix keeps no Unix mode bits). If that is not allowed (a
 * read-only task folder) and the file is not executable already, runs a private copy from
 * os.tmpdir() instead. Returns the path to run.
 */
function makeExecutable(file, platform) {
  if (platform === 'win32') return file;
  try {
    fs.chmodSync(file, 0o755);
    return file;
  } catch (err) {
    if (!READ_ONLY_CODES.has(err.code)) throw err;
  }
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return file;
  } catch {
    const copy = path.join(os.tmpdir(), `azdo-task-${uniqueSuffix()}-${path.basename(file)}`);
    fs.copyFileSync(file, copy);
    fs.chmodSync(copy, 0o755);
    return copy;
  }
}

/** Everything up to the spawn: returns the path of the binary to run on this platform. */
function prepare(taskDir, platform, arch) {
  const { binary } = readConfig(taskDir);
  const found = locateBinary(taskDir, binary, platform, arch);
  const file = found.compressed ? expandBrotli(found.compressed, found.path) : found.path;
  return makeExecutable(file, platform);
}

/** Escapes a logging-command message: only %, CR and LF (agent contract §3). */
function escapeMessage(text) {
  return String(text).replace(/%/g, '%AZP25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** The lines that make the agent show `message` as the task's error and fail the task. */
function failureLines(message) {
  return (
    `##vso[task.logissue type=error;]${escapeMessage(message)}\n` +
    '##vso[task.complete result=Failed;]\n'
  );
}

function fail(message) {
  process.stdout.write(failureLines(message));
  process.exitCode = 1;
}

/**
 * Runs the binary with this process's environment, arguments and stdio; forwards
 * SIGINT/SIGTERM (the agent signals on cancel) and ends the way the child ended.
 */
function run(file, args) {
  const child = childProcess.spawn(file, args, { stdio: 'inherit', windowsHide: true });
  const forwarders = FORWARDED_SIGNALS.map((signal) => {
    const forward = () => {
      // A child that has not started yet or is gone cannot be signalled; nothing to do.
      try {
        child.kill(signal);
      } catch {
        /* ignore */
      }
    };
    process.on(signal, forward);
    return [signal, forward];
  });
  const stopForwarding = () => forwarders.forEach(([signal, fn]) => process.removeListener(signal, fn));

  child.on('error', (err) => {
    stopForwarding();
    fail(`cannot start ${file}: ${err.message}`);
  });
  child.on('exit', (code, signal) => {
    stopForwarding();
    if (code !== null) {
      process.exit(code);
    }
    // Killed by a signal: end the same way, so the agent sees what the child saw. If the
    // signal does not end us (Windows, or a signal Node ignores), exit as a shell would.
    const number = os.constants.signals[signal] || 0;
    try {
      process.kill(process.pid, signal);
    } catch {
      /* fall through */
    }
    setTimeout(() => process.exit(128 + number), 100);
  });
}

function main() {
  let file;
  try {
    file = prepare(__dirname, process.platform, process.arch);
  } catch (err) {
    fail(err instanceof LauncherError ? err.message : `launcher: ${err.message}`);
    return;
  }
  run(file, process.argv.slice(2));
}

if (require.main === module) {
  main();
} else {
  module.exports = {
    LauncherError,
    availablePlatforms,
    binaryFileName,
    escapeMessage,
    expandBrotli,
    failureLines,
    locateBinary,
    makeExecutable,
    platformKey,
    prepare,
    readConfig,
  };
}
