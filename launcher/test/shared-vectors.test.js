// The launcher's half of the proxy-bypass vectors shared with task-sdk
// (tests/vectors/proxy-bypass.json; the Rust half is crates/task-sdk/tests/proxy_bypass.rs):
// both must route every case alike, as the agent does.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');

const launcher = require('../launcher.js');

const VECTORS = path.join(__dirname, '..', '..', 'tests', 'vectors', 'proxy-bypass.json');

test('the tunnel bypasses the proxy exactly for the shared vectors', () => {
  const vectors = JSON.parse(fs.readFileSync(VECTORS, 'utf8'));
  assert.ok(vectors.cases.length > 20, 'the vectors file holds the cases');
  for (const { bypass, url, direct, why } of vectors.cases) {
    const target = new URL(url);
    assert.equal(target.protocol, 'https:', `${url}: the tunnel only carries https`);
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(target.port) || 443;
    const settings = launcher.proxySettings({
      AGENT_PROXYURL: vectors.proxy,
      AGENT_PROXYBYPASSLIST: JSON.stringify(bypass),
    });
    assert.equal(!launcher.shouldUseProxy(settings, host, port), direct, `${url} with ${JSON.stringify(bypass)}: ${why}`);
  }
});
