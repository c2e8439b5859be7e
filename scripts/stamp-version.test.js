// Tests of scripts/stamp-version.js: reading the workspace version and the version mapping.
// Run: node --test scripts/stamp-version.test.js
'use strict';

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');

const stamp = require('./stamp-version.js');

const SCRIPT = path.join(__dirname, 'stamp-version.js');

test('reads [workspace.package] version, not a package or dependency version', () => {
  const toml = [
    '[package]',
    'version = "9.9.9"',
    '',
    '[workspace.package]',
    '# The one version source',
    'edition = "2021"',
    'version = "0.4.2" # trailing comment',
    '',
    '[workspace.dependencies]',
    'serde = { version = "1" }',
  ].join('\n');
  assert.equal(stamp.workspaceVersion(toml), '0.4.2');
  assert.throws(() => stamp.workspaceVersion('[workspace]\nmembers = []\n'), /no `version`/);
});

test('the real Cargo.toml has a version the Marketplace accepts', () => {
  const toml = fs.readFileSync(path.join(__dirname, '..', 'Cargo.toml'), 'utf8');
  assert.doesNotThrow(() => stamp.parseVersion(stamp.workspaceVersion(toml)));
});

test('versions must be plain MAJOR.MINOR.PATCH', () => {
  assert.deepEqual(stamp.parseVersion('0.12.3'), { major: 0, minor: 12, patch: 3 });
  for (const bad of ['0.1', '0.1.0-beta', '01.2.3', 'v0.1.0', '0.1.0.1', '']) {
    assert.throws(() => stamp.parseVersion(bad), /MAJOR\.MINOR\.PATCH/, bad);
  }
});

test('task version keeps the task Major and takes minor and patch', () => {
  assert.deepEqual(stamp.taskVersion('0.7.12', 0), { Major: 0, Minor: 7, Patch: 12 });
  assert.deepEqual(stamp.taskVersion('0.7.12', 2), { Major: 2, Minor: 7, Patch: 12 });
  assert.throws(() => stamp.taskVersion('1.0.0', 0), /major 1/);
  assert.throws(() => stamp.taskVersion('0.1.0', -1), /whole number/);
  assert.throws(() => stamp.taskVersion('0.1.0', undefined), /whole number/);
});

test('stamping edits only the version, on a copy, through the command line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stamp-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const task = path.join(dir, 'task.json');
  // With a byte-order mark and a string Major, as hand-edited files sometimes have.
  fs.writeFileSync(task, '\uFEFF{"name":"x","version":{"Major":"0","Minor":0,"Patch":0},"inputs":[]}');
  const out = childProcess.execFileSync(process.execPath, [SCRIPT, 'task', task, '0.3.4'], { encoding: 'utf8' });
  assert.equal(out, '0.3.4\n');
  assert.deepEqual(JSON.parse(fs.readFileSync(task, 'utf8')), {
    name: 'x',
    version: { Major: 0, Minor: 3, Patch: 4 },
    inputs: [],
  });

  const ext = path.join(dir, 'vss-extension.json');
  fs.writeFileSync(ext, '{"id":"e","version":"0.0.0"}');
  childProcess.execFileSync(process.execPath, [SCRIPT, 'extension', ext, '0.3.4']);
  assert.deepEqual(JSON.parse(fs.readFileSync(ext, 'utf8')), { id: 'e', version: '0.3.4' });

  const failed = childProcess.spawnSync(process.execPath, [SCRIPT, 'extension', ext, '0.3'], { encoding: 'utf8' });
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /^stamp-version: version "0\.3" is not MAJOR\.MINOR\.PATCH/);
});
