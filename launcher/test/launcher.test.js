// Tests of launcher.js: the pure parts through its exports, the process behaviour (exit
// codes, signals, environment, brotli expansion, read-only folders) by running the real
// script with `node` against fake binaries, which are shell scripts.
'use strict';

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const zlib = require('node:zlib');

const launcher = require('../launcher.js');

const LAUNCHER = path.join(__dirname, '..', 'launcher.js');
const HOST = launcher.platformKey(process.platform, process.arch);
const POSIX = process.platform !== 'win32';
const IS_ROOT = POSIX && process.getuid() === 0;
const NOBODY = 65534;

/** A throw-away task folder: launcher.js, launcher.json, and the given bin/ files. */
function makeTaskDir(t, { binary = 'fake-task', files = {}, config } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-test-'));
  t.after(() => {
    // Writable again first: some tests make the folder read-only.
    for (const sub of walkDirs(dir)) fs.chmodSync(sub, 0o755);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  fs.chmodSync(dir, 0o755);
  fs.copyFileSync(LAUNCHER, path.join(dir, 'launcher.js'));
  fs.writeFileSync(path.join(dir, 'launcher.json'), config ?? JSON.stringify({ binary }));
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content, { mode: 0o644 });
  }
  // Every folder readable by everyone, as an agent's extracted task folder is.
  for (const sub of walkDirs(dir)) fs.chmodSync(sub, 0o755);
  return dir;
}

function walkDirs(dir) {
  const out = [dir];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...walkDirs(path.join(dir, entry.name)));
  }
  return out;
}

function script(body) {
  return `#!/bin/sh\n${body}\n`;
}

function runLauncher(dir, args = [], options = {}) {
  return childProcess.spawnSync(process.execPath, [path.join(dir, 'launcher.js'), ...args], {
    encoding: 'utf8',
    timeout: 20000,
    ...options,
  });
}

/** Starts the launcher, resolves once the child printed `ready`. */
function startUntilReady(dir) {
  const proc = childProcess.spawn(process.execPath, [path.join(dir, 'launcher.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal, stdout }));
  });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "ready" in time; output: ${stdout}`)), 10000);
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { proc, ready, exited };
}

test('platform keys follow Node names, with .exe on Windows', () => {
  assert.equal(launcher.platformKey('linux', 'x64'), 'linux-x64');
  assert.equal(launcher.platformKey('darwin', 'arm64'), 'darwin-arm64');
  assert.equal(launcher.binaryFileName('deploy-arm', 'win32'), 'deploy-arm.exe');
  assert.equal(launcher.binaryFileName('deploy-arm', 'linux'), 'deploy-arm');
});

test('picks the binary of the asked platform among several', (t) => {
  const dir = makeTaskDir(t, {
    files: {
      'bin/linux-x64/fake-task': 'l',
      'bin/linux-arm64/fake-task': 'la',
      'bin/win32-x64/fake-task.exe': 'w',
      'bin/darwin-arm64/fake-task.br': 'compressed',
    },
  });
  const at = (...parts) => path.join(dir, 'bin', ...parts);
  assert.deepEqual(launcher.locateBinary(dir, 'fake-task', 'linux', 'arm64'), {
    path: at('linux-arm64', 'fake-task'),
    compressed: null,
  });
  assert.deepEqual(launcher.locateBinary(dir, 'fake-task', 'win32', 'x64'), {
    path: at('win32-x64', 'fake-task.exe'),
    compressed: null,
  });
  assert.deepEqual(launcher.locateBinary(dir, 'fake-task', 'darwin', 'arm64'), {
    path: at('darwin-arm64', 'fake-task'),
    compressed: at('darwin-arm64', 'fake-task.br'),
  });
});

test('an unsupported platform names the platforms the package has', (t) => {
  const dir = makeTaskDir(t, {
    files: { 'bin/win32-x64/fake-task.exe': 'w', 'bin/linux-x64/fake-task': 'l' },
  });
  assert.throws(
    () => launcher.locateBinary(dir, 'fake-task', 'aix', 'ppc64'),
    (err) =>
      err instanceof launcher.LauncherError &&
      err.message.includes('aix-ppc64') &&
      err.message.includes('linux-x64, win32-x64'),
  );
});

test('a folder for the platform without the binary is also unsupported', (t) => {
  const dir = makeTaskDir(t, { files: { 'bin/linux-x64/other': 'x' } });
  assert.throws(() => launcher.locateBinary(dir, 'fake-task', 'linux', 'x64'), launcher.LauncherError);
});

test('launcher.json must name a plain file', (t) => {
  for (const config of ['{"binary": "../../bin/sh"}', '{}', 'not json', '{"binary": 3}']) {
    const dir = makeTaskDir(t, { config });
    assert.throws(() => launcher.readConfig(dir), launcher.LauncherError, config);
  }
  const dir = makeTaskDir(t, { config: '{"binary": "deploy-notebooks"}' });
  assert.equal(launcher.readConfig(dir).binary, 'deploy-notebooks');
});

test('failure lines escape the message as the agent expects', () => {
  assert.equal(
    launcher.failureLines('50% done\r\nno'),
    '##vso[task.logissue type=error;]50%AZP25 done%0D%0Ano\n##vso[task.complete result=Failed;]\n',
  );
});

test('run end to end: no platform binary gives a task error and exit 1', (t) => {
  const dir = makeTaskDir(t, { files: { 'bin/aix-ppc64/fake-task': 'x' } });
  const result = runLauncher(dir);
  assert.equal(result.status, 1);
  assert.match(result.stdout, /^##vso\[task\.logissue type=error;\].*fake-task.*aix-ppc64/m);
  assert.match(result.stdout, new RegExp(`no fake-task binary for ${HOST}`));
  assert.match(result.stdout, /^##vso\[task\.complete result=Failed;\]$/m);
});

test('run end to end: a missing launcher.json gives a task error', (t) => {
  const dir = makeTaskDir(t);
  fs.rmSync(path.join(dir, 'launcher.json'));
  const result = runLauncher(dir);
  assert.equal(result.status, 1);
  assert.match(result.stdout, /##vso\[task\.logissue type=error;\]cannot read .*launcher\.json/);
});

test('makes the binary executable, passes arguments, environment and exit code', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, {
    files: {
      [`bin/${HOST}/fake-task`]: script(
        'echo "args=$*"; echo "input=$INPUT_FOO secret=$SECRET_BAR auth=$ENDPOINT_AUTH_X"; exit 7',
      ),
    },
  });
  const binary = path.join(dir, 'bin', HOST, 'fake-task');
  assert.equal(fs.statSync(binary).mode & 0o111, 0, 'starts without exec bits, as in a .vsix');
  const result = runLauncher(dir, ['a', 'b c'], {
    env: { ...process.env, INPUT_FOO: 'foo', SECRET_BAR: 'bar', ENDPOINT_AUTH_X: '{"scheme":"x"}' },
  });
  assert.equal(result.status, 7, result.stderr);
  assert.match(result.stdout, /^args=a b c$/m);
  assert.match(result.stdout, /^input=foo secret=bar auth=\{"scheme":"x"\}$/m);
  assert.equal(fs.statSync(binary).mode & 0o777, 0o755);
});

test('passes exit codes 0 and 255 through', { skip: !POSIX }, (t) => {
  for (const code of [0, 1, 255]) {
    const dir = makeTaskDir(t, { files: { [`bin/${HOST}/fake-task`]: script(`exit ${code}`) } });
    assert.equal(runLauncher(dir).status, code);
  }
});

test('stderr and stdout of the child reach the agent', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, {
    files: { [`bin/${HOST}/fake-task`]: script('echo out; echo err >&2') },
  });
  const result = runLauncher(dir);
  assert.equal(result.stdout, 'out\n');
  assert.equal(result.stderr, 'err\n');
});

for (const [signal, exitCode] of [
  ['SIGTERM', 143],
  ['SIGINT', 130],
]) {
  test(`forwards ${signal} to the child and exits with the child's code`, { skip: !POSIX }, async (t) => {
    const trapName = signal.slice(3);
    const dir = makeTaskDir(t, {
      files: {
        [`bin/${HOST}/fake-task`]: script(
          `trap 'echo got-${trapName}; exit ${exitCode}' ${trapName}\necho ready\n` +
            'i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 99',
        ),
      },
    });
    const { proc, ready, exited } = startUntilReady(dir);
    await ready;
    proc.kill(signal);
    const result = await exited;
    assert.equal(result.code, exitCode);
    assert.match(result.stdout, new RegExp(`got-${trapName}`));
  });
}

test('a child killed by a signal ends the launcher by the same signal', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, { files: { [`bin/${HOST}/fake-task`]: script('kill -TERM $$; sleep 5') } });
  const result = runLauncher(dir);
  assert.equal(result.signal, 'SIGTERM');
  assert.equal(result.status, null);
});

test('expands a brotli-compressed binary next to itself, once', { skip: !POSIX }, (t) => {
  const body = script('echo expanded-ok');
  const dir = makeTaskDir(t, {
    files: { [`bin/${HOST}/fake-task.br`]: zlib.brotliCompressSync(Buffer.from(body)) },
  });
  const folder = path.join(dir, 'bin', HOST);
  const first = runLauncher(dir);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  assert.equal(first.stdout, 'expanded-ok\n');
  assert.equal(fs.readFileSync(path.join(folder, 'fake-task'), 'utf8'), body);
  assert.deepEqual(fs.readdirSync(folder).sort(), ['fake-task', 'fake-task.br'], 'no temporary files left');
  // The second run uses the expanded file: make it distinguishable.
  fs.writeFileSync(path.join(folder, 'fake-task'), script('echo plain-used'));
  assert.equal(runLauncher(dir).stdout, 'plain-used\n');
});

test('concurrent first runs of a compressed binary all succeed', { skip: !POSIX }, async (t) => {
  // Big enough that expansions overlap.
  const body = script(`# ${'x'.repeat(4 * 1024 * 1024)}\necho concurrent-ok`);
  const dir = makeTaskDir(t, {
    files: { [`bin/${HOST}/fake-task.br`]: zlib.brotliCompressSync(Buffer.from(body)) },
  });
  const runs = Array.from({ length: 6 }, () =>
    new Promise((resolve) => {
      const proc = childProcess.execFile(process.execPath, [path.join(dir, 'launcher.js')], (err, stdout) =>
        resolve({ code: err ? err.code : 0, stdout }),
      );
      proc.stdin.end();
    }),
  );
  for (const result of await Promise.all(runs)) {
    assert.deepEqual(result, { code: 0, stdout: 'concurrent-ok\n' });
  }
  const folder = path.join(dir, 'bin', HOST);
  assert.deepEqual(fs.readdirSync(folder).sort(), ['fake-task', 'fake-task.br']);
  assert.equal(fs.readFileSync(path.join(folder, 'fake-task'), 'utf8'), body);
});

test('a corrupt compressed binary is a task error', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, { files: { [`bin/${HOST}/fake-task.br`]: 'not brotli at all' } });
  const result = runLauncher(dir);
  assert.equal(result.status, 1);
  assert.match(result.stdout, /##vso\[task\.logissue type=error;\]cannot expand .*fake-task\.br/);
});

// The agent's user may not own the task folder (e.g. a shared, read-only tool cache). As
// root, permissions do not bite, so the launcher runs as `nobody` there.
function readOnlyOptions(t) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-tmp-'));
  fs.chmodSync(tmp, 0o777);
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  return { tmp, options: { env: { ...process.env, TMPDIR: tmp }, ...(IS_ROOT ? { uid: NOBODY, gid: NOBODY } : {}) } };
}

function makeReadOnly(dir) {
  // As root the folders stay writable for root but not for `nobody`; as a normal user they
  // are made read-only for us.
  for (const sub of walkDirs(dir)) fs.chmodSync(sub, 0o555);
}

test('a read-only task folder expands into the temp folder under a content hash', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, {
    files: { [`bin/${HOST}/fake-task.br`]: zlib.brotliCompressSync(Buffer.from(script('echo from-tmp'))) },
  });
  makeReadOnly(dir);
  const { tmp, options } = readOnlyOptions(t);
  const first = runLauncher(dir, [], options);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  assert.equal(first.stdout, 'from-tmp\n');
  assert.equal(fs.existsSync(path.join(dir, 'bin', HOST, 'fake-task')), false);
  const cached = fs.readdirSync(tmp);
  assert.equal(cached.length, 1);
  assert.match(cached[0], /^azdo-task-[0-9a-f]{32}-fake-task$/);
  // A second run reuses the same file.
  assert.equal(runLauncher(dir, [], options).stdout, 'from-tmp\n');
  assert.deepEqual(fs.readdirSync(tmp), cached);
});

test('a non-executable binary in a read-only folder runs from a private copy', { skip: !POSIX }, (t) => {
  const dir = makeTaskDir(t, { files: { [`bin/${HOST}/fake-task`]: script('echo copy-ran; exit 3') } });
  makeReadOnly(dir);
  const { options } = readOnlyOptions(t);
  if (!IS_ROOT) fs.chmodSync(path.join(dir, 'bin', HOST, 'fake-task'), 0o444);
  const result = runLauncher(dir, [], options);
  assert.equal(result.status, 3, result.stdout + result.stderr);
  assert.equal(result.stdout, 'copy-ran\n');
});

test('the launcher never loads azure-pipelines-task-lib', () => {
  const source = fs.readFileSync(LAUNCHER, 'utf8');
  const required = [...source.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]).sort();
  assert.deepEqual(required, ['child_process', 'crypto', 'fs', 'http', 'net', 'os', 'path', 'tls', 'zlib']);
});
