#!/usr/bin/env node
// Stamps the one version of the project into the packaged manifests. Used by
// scripts/package.sh on the staging copies only; the source tree is never edited.
//
// The one source: `[workspace.package] version` in the root Cargo.toml, `MAJOR.MINOR.PATCH`.
//
// Mapping:
//   vss-extension.json  version = "MAJOR.MINOR.PATCH"          (the workspace version as is)
//   task.json           version = {Major: <task.json's own Major>, Minor: MINOR, Patch: PATCH}
//
// A task's Major is part of its public name: YAML says `deploynotebooks@0`, and the agent
// only picks versions within that major. So the Major stays what the task.json says (0 for
// every task today) and the workspace's minor and patch become the task's. While the
// workspace major is 0 this is one-to-one and increases with every release, which the agent
// needs to download a new task version. A workspace major above 0 is refused: it needs a
// deliberate choice (bump task majors, keep old majors as <folder>/<VersionDir>/), not an
// accident of this script.
//
// Usage:
//   node scripts/stamp-version.js version [Cargo.toml]          print the workspace version
//   node scripts/stamp-version.js extension <file> <version>    stamp a vss-extension.json
//   node scripts/stamp-version.js task <file> <version>         stamp a task.json
'use strict';

const fs = require('fs');

/** `[workspace.package] version` from the text of a Cargo.toml. */
function workspaceVersion(cargoToml) {
  let inSection = false;
  for (const raw of cargoToml.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line.startsWith('[')) {
      inSection = line === '[workspace.package]';
      continue;
    }
    const match = inSection && /^version\s*=\s*"([^"]*)"$/.exec(line);
    if (match) return match[1];
  }
  throw new Error('no `version` in the [workspace.package] section of Cargo.toml');
}

/** Splits `MAJOR.MINOR.PATCH`; the Marketplace accepts nothing else (no pre-release tags). */
function parseVersion(text) {
  const match = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/.exec(text);
  if (!match) throw new Error(`version "${text}" is not MAJOR.MINOR.PATCH (digits only)`);
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]) };
}

/** The task.json version for a workspace version, keeping the task's own Major. */
function taskVersion(version, taskMajor) {
  const { major, minor, patch } = parseVersion(version);
  if (major !== 0) {
    throw new Error(
      `workspace version ${version} has major ${major}: task versions map only 0.MINOR.PATCH ` +
        '(see scripts/stamp-version.js for why, and decide how task majors move)',
    );
  }
  if (!Number.isInteger(taskMajor) || taskMajor < 0) {
    throw new Error(`task.json version.Major must be a whole number, found ${JSON.stringify(taskMajor)}`);
  }
  return { Major: taskMajor, Minor: minor, Patch: patch };
}

function readJson(file) {
  // task.json files edited on Windows often start with a byte-order mark.
  return JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
}

function writeJson(file, value) {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function stampExtension(file, version) {
  parseVersion(version);
  const manifest = readJson(file);
  manifest.version = version;
  writeJson(file, manifest);
  return manifest;
}

function stampTask(file, version) {
  const task = readJson(file);
  // The Major a task.json declares; a string "0" is accepted as the agent accepts it.
  const declared = task.version && task.version.Major;
  task.version = taskVersion(version, typeof declared === 'string' ? Number(declared) : declared);
  writeJson(file, task);
  return task;
}

function main(argv) {
  const [command, ...args] = argv;
  if (command === 'version') {
    const version = workspaceVersion(fs.readFileSync(args[0] || 'Cargo.toml', 'utf8'));
    parseVersion(version);
    process.stdout.write(`${version}\n`);
  } else if (command === 'extension' && args.length === 2) {
    stampExtension(args[0], args[1]);
  } else if (command === 'task' && args.length === 2) {
    const { version } = stampTask(args[0], args[1]);
    process.stdout.write(`${version.Major}.${version.Minor}.${version.Patch}\n`);
  } else {
    throw new Error('usage: stamp-version.js version [Cargo.toml] | extension <file> <version> | task <file> <version>');
  }
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`stamp-version: ${err.message}\n`);
    process.exit(1);
  }
} else {
  module.exports = { parseVersion, stampExtension, stampTask, taskVersion, workspaceVersion };
}
