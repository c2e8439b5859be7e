// Tests of the launcher's TLS tunnel (docs/tls-tunnel.md), driven as the Rust side
// drives it: a raw TCP socket, a CONNECT with the token, then plain HTTP/1.1 inside. The
// "remote" servers are an HTTPS server with throw-away test CAs (fixtures/) and a fake agent
// proxy, all on 127.0.0.1. The agent's proxy is never used for loopback targets, so the proxy
// tests use the name adb-1.example.test, which this process's dns.lookup resolves to 127.0.0.1
// (resolveTestNames).
'use strict';

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const dns = require('node:dns');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');

const launcher = require('../launcher.js');

const LAUNCHER = path.join(__dirname, '..', 'launcher.js');
const HOST = launcher.platformKey(process.platform, process.arch);
const POSIX = process.platform !== 'win32';
const fixture = (name) => path.join(__dirname, 'fixtures', name);
const TEST_CA = fixture('test-ca.pem');
const OTHER_CA = fixture('test-other-ca.pem');
/** A non-loopback name with a certificate signed by EXAMPLE_CA. */
const EXAMPLE_HOST = 'adb-1.example.test';
const EXAMPLE_CA = fixture('test-example-ca.pem');
/** Resolves to 127.0.0.1 too, but has no certificate: the server answers with its localhost one. */
const WRONG_NAME_HOST = 'wrong-name.example.test';
/** Does not resolve. */
const MISSING_HOST = 'nowhere.example.test';
const TIMEOUT = { timeout: 15000 };

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

/**
 * Makes this process's dns.lookup (which net.connect uses) resolve EXAMPLE_HOST and
 * WRONG_NAME_HOST to 127.0.0.1 and fail MISSING_HOST with ENOTFOUND, until the test ends.
 */
function resolveTestNames(t) {
  const original = dns.lookup;
  dns.lookup = function lookup(hostname, options, callback) {
    if (typeof options === 'function') [options, callback] = [{}, options];
    if (typeof options === 'number') options = { family: options };
    const name = String(hostname).toLowerCase();
    if (name === EXAMPLE_HOST || name === WRONG_NAME_HOST) {
      process.nextTick(() =>
        options.all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4),
      );
      return {};
    }
    if (name === MISSING_HOST) {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
      process.nextTick(() => callback(err));
      return {};
    }
    return original.call(this, hostname, options, callback);
  };
  t.after(() => {
    dns.lookup = original;
  });
}

/**
 * An HTTPS server that answers with what it saw: path, SNI, ALPN. Sends leaf + CA: the
 * localhost/127.0.0.1 certificate, or EXAMPLE_HOST's when that is the SNI.
 */
async function httpsServer(t) {
  const server = https.createServer(
    {
      key: fs.readFileSync(fixture('test-server-key.pem')),
      cert: fs.readFileSync(fixture('test-server-cert.pem'), 'utf8') + fs.readFileSync(TEST_CA, 'utf8'),
      ALPNProtocols: ['http/1.1'],
    },
    (req, res) => {
      if (req.url === '/count') {
        // Answers with the size of the request body and a body of the size asked for.
        let received = 0;
        req.on('data', (chunk) => (received += chunk.length));
        req.on('end', () => res.end(`${received} `.padEnd(Number(req.headers['x-answer-size']), '.')));
        return;
      }
      const seen = { path: req.url, servername: req.socket.servername || null, alpn: req.socket.alpnProtocol };
      res.end(`hello from https ${JSON.stringify(seen)}`);
    },
  );
  server.addContext(EXAMPLE_HOST, {
    key: fs.readFileSync(fixture('test-example-key.pem')),
    cert: fs.readFileSync(fixture('test-example-cert.pem'), 'utf8') + fs.readFileSync(EXAMPLE_CA, 'utf8'),
  });
  server.on('tlsClientError', () => {});
  const port = await listen(server);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, port };
}

/** A TCP server that does `onSocket(socket)` with each connection (a broken "TLS" server). */
async function rawServer(t, onSocket) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    onSocket(socket);
  });
  const port = await listen(server);
  t.after(() => server.close());
  return port;
}

/** A port nothing listens on (just released). */
async function closedPort() {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A fake agent proxy: records each CONNECT line and Proxy-Authorization, then either
 * answers `refuse` (a status code) or connects to the target (through dns.lookup, see
 * resolveTestNames) and pipes.
 */
async function fakeProxy(t, { refuse } = {}) {
  const seen = [];
  const server = http.createServer();
  server.on('connect', (req, socket, head) => {
    seen.push({ line: `${req.method} ${req.url} HTTP/${req.httpVersion}`, authorization: req.headers['proxy-authorization'] });
    socket.on('error', () => {});
    if (refuse) {
      socket.end(`HTTP/1.1 ${refuse} ${http.STATUS_CODES[refuse]}\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const at = req.url.lastIndexOf(':');
    const upstream = net.connect(Number(req.url.slice(at + 1)), req.url.slice(0, at), () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
  });
  const port = await listen(server);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${port}`, seen };
}

async function tunnelFor(t, env, options) {
  const tunnel = await launcher.startTunnel(env, options);
  // The test's own client sockets go too, so that a close() that leaves sockets open fails
  // its own test instead of hanging the whole file.
  tunnel.testSockets = new Set();
  t.after(() => {
    tunnel.close();
    for (const socket of tunnel.testSockets) socket.destroy();
  });
  return tunnel;
}

/** Reads one HTTP response head (and a Content-Length body unless it is a 200 to CONNECT). */
function readResponse(socket, { connect = true } = {}) {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    let head = null;
    const done = (extra) => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', reject);
      resolve({ ...head, ...extra, socket });
    };
    const tryParse = () => {
      if (!head) {
        const at = buffered.indexOf('\r\n\r\n');
        if (at < 0) return;
        const [statusLine, ...lines] = buffered.subarray(0, at).toString('latin1').split('\r\n');
        const headers = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        head = { statusLine, status: Number(statusLine.split(' ')[1]), headers };
        buffered = buffered.subarray(at + 4);
        if (connect && head.status === 200) {
          done({ body: '', rest: buffered });
          return;
        }
      }
      const length = Number(head.headers['content-length']);
      if (buffered.length >= length) done({ body: buffered.subarray(0, length).toString('utf8') });
    };
    const onData = (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      tryParse();
    };
    const onEnd = () => (head ? done({ body: buffered.toString('utf8') }) : reject(new Error(`no response: ${buffered}`)));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', reject);
  });
}

/** Opens a TCP connection to the tunnel and sends `request` (a CONNECT by default). */
function ask(tunnel, target, { token = tunnel.token, request, after = '' } = {}) {
  const [host, port] = tunnel.address.split(':');
  const socket = net.connect(Number(port), host);
  tunnel.testSockets.add(socket);
  const auth = token === null ? '' : `Proxy-Authorization: Bearer ${token}\r\n`;
  socket.write(request ?? `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n${after}`);
  return readResponse(socket);
}

/** Sends a GET through an open tunnel and reads the answer. */
async function get(socket, { close = true, host = '127.0.0.1' } = {}) {
  socket.write(`GET /through HTTP/1.1\r\nHost: ${host}\r\nConnection: ${close ? 'close' : 'keep-alive'}\r\n\r\n`);
  return readResponse(socket, { connect: false });
}

/**
 * A permanent refusal carries `X-Tunnel-Retry: no` (the client must not retry); a transient
 * one does not.
 */
function assertRetry(answer, retry) {
  const header = answer.headers['x-tunnel-retry'];
  assert.equal(header, retry ? undefined : 'no', `X-Tunnel-Retry for ${answer.statusLine}: ${answer.body}`);
}

function assertFailure(answer, status, ...patterns) {
  assert.equal(answer.status, status, answer.statusLine + answer.body);
  assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(answer.headers.connection, 'close');
  assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body));
  assert.doesNotMatch(answer.body, /[\r\n]/, 'one line');
  for (const pattern of patterns) assert.ok(answer.body.includes(pattern), `${JSON.stringify(pattern)} in ${answer.body}`);
}

function socketClosed(socket) {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', resolve)));
}

// --- the pure parts -------------------------------------------------------------------

test('tunnel targets are host:port with a port 1..65535, IPv6 in brackets', () => {
  assert.deepEqual(launcher.parseTunnelTarget('adb-1.azuredatabricks.net:443'), {
    host: 'adb-1.azuredatabricks.net',
    port: 443,
    authority: 'adb-1.azuredatabricks.net:443',
  });
  assert.deepEqual(launcher.parseTunnelTarget('[::1]:8443'), { host: '::1', port: 8443, authority: '[::1]:8443' });
  assert.deepEqual(launcher.parseTunnelTarget('127.0.0.1:65535').port, 65535);
  for (const bad of ['example.com', 'example.com:0', 'example.com:65536', 'example.com:https', ':443', '::1:443',
    '[::1]', '[example.com]:443', 'a b:443', 'user@host:443', 'host/path:443', '/', '-bad:443', 'example.com:443 ']) {
    assert.equal(launcher.parseTunnelTarget(bad), null, bad);
  }
});

test('the bypass list sees https://host for 443 and https://host:port otherwise, without a slash', () => {
  assert.equal(launcher.proxyTargetUrl('example.com', 443), 'https://example.com');
  assert.equal(launcher.proxyTargetUrl('example.com', 8443), 'https://example.com:8443');
  assert.equal(launcher.proxyTargetUrl('::1', 443), 'https://[::1]');
  assert.equal(launcher.proxyTargetUrl('2001:db8::1', 8443), 'https://[2001:db8::1]:8443');
  // .NET's Uri.Host is lower case.
  assert.equal(launcher.proxyTargetUrl('ADB-1.Example.TEST', 443), 'https://adb-1.example.test');
});

test('loopback hosts are those .NET Uri.IsLoopback accepts', () => {
  for (const host of ['localhost', 'LocalHost', 'loopback', '127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1', '::127.0.0.1']) {
    assert.equal(launcher.isLoopbackHost(host), true, host);
  }
  for (const host of ['adb-1.example.test', 'localhost.', 'localhost.example', 'my-localhost', '128.0.0.1',
    '10.127.0.1', '::2', '::ffff:127.0.0.2', '::ffff:10.0.0.1', 'fe80::1']) {
    assert.equal(launcher.isLoopbackHost(host), false, host);
  }
});

test('shouldUseProxy follows the agent: no proxy, a loopback target or a matching bypass regex go direct', () => {
  const settings = (list) =>
    launcher.proxySettings({ AGENT_PROXYURL: 'http://proxy.example:8888', AGENT_PROXYBYPASSLIST: list && JSON.stringify(list) });
  const use = (list, host, port = 443) => launcher.shouldUseProxy(settings(list), host, port);
  assert.equal(launcher.shouldUseProxy(null, EXAMPLE_HOST, 443), false, 'no proxy');
  assert.equal(launcher.proxySettings({ AGENT_PROXYURL: '  ' }), null, 'a blank proxy URL is none');
  assert.equal(use(undefined, EXAMPLE_HOST), true);
  assert.equal(use(undefined, '10.0.0.1', 8443), true);
  // Loopback always goes direct, without any bypass list.
  for (const host of ['localhost', 'LOCALHOST', 'loopback', '127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
    assert.equal(use(undefined, host), false, host);
    assert.equal(use([], host, 8443), false, host);
  }
  // The regexes see scheme://host[:port] without a slash; :port only when it is not 443.
  assert.equal(use(['\\.corp\\.example$'], 'x.corp.example'), false);
  assert.equal(use(['\\.corp\\.example$'], 'x.corp.example', 8443), true, 'the port is part of the string');
  assert.equal(use(['^https://x\\.corp\\.example:8443$'], 'x.corp.example', 8443), false);
  assert.equal(use(['^https://x\\.corp\\.example:443$'], 'x.corp.example', 443), true, 'no :443');
  assert.equal(use(['^https://x\\.corp\\.example/$'], 'x.corp.example'), true, 'no trailing slash');
  assert.equal(use(['^https://\\[2001:db8::1\\]$'], '2001:db8::1'), false, 'IPv6 in brackets');
  assert.equal(use(['nothing\\.example', 'CORP\\.Example'], 'x.corp.example'), false, 'any one, any case');
  // Patterns are trimmed (an anchored pattern still matches), blank ones skipped (an empty
  // regex would match everything).
  assert.equal(use(['  ^https://x\\.corp\\.example$  '], 'x.corp.example'), false);
  assert.equal(use(['', '   '], 'x.corp.example'), true);
  // A pattern that does not compile is ignored, as the agent ignores it; the others still count.
  assert.equal(use(['(unclosed', '[z-a]'], 'x.corp.example'), true);
  assert.equal(use(['(unclosed', '\\.corp\\.example$'], 'x.corp.example'), false);
  assert.equal(use(['(unclosed', '\\.corp\\.example$'], EXAMPLE_HOST), true);
});

test('isPermanentTlsFailure: certificate and TLS protocol codes yes, resets and timeouts no', () => {
  const permanent = (code) => launcher.isPermanentTlsFailure(Object.assign(new Error('x'), code && { code }));
  for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'INVALID_CA',
    'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER',
    'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_NO_PROTOCOLS_AVAILABLE']) {
    assert.equal(permanent(code), true, code);
  }
  for (const code of ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'OUT_OF_MEM',
    'ERR_TLS_HANDSHAKE_TIMEOUT', 'ERR_SSL_UNEXPECTED_EOF_WHILE_READING', 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR',
    'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC', 'ERR_SOCKET_CLOSED', undefined]) {
    assert.equal(permanent(code), false, String(code));
  }
  assert.equal(launcher.isPermanentTlsFailure(null), false);
});

test('the child environment is the given one plus exactly the two variables', () => {
  const env = { PATH: '/bin', INPUT_X: 'x', SECRET_Y: 'y' };
  const child = launcher.childEnvironment(env, { address: '127.0.0.1:1234', token: 'ab' });
  assert.deepEqual(child, {
    ...env,
    AZDO_DATA_TASKS_TLS_TUNNEL: '127.0.0.1:1234',
    AZDO_DATA_TASKS_TLS_TUNNEL_TOKEN: 'ab',
  });
  assert.deepEqual(env, { PATH: '/bin', INPUT_X: 'x', SECRET_Y: 'y' }, 'the input is not changed');
});

// --- the tunnel as the binary uses it ----------------------------------------------------

test('startTunnel listens on 127.0.0.1 with a 32-byte hex token', TIMEOUT, async (t) => {
  const one = await tunnelFor(t, {});
  const two = await tunnelFor(t, {});
  assert.match(one.address, /^127\.0\.0\.1:[1-9][0-9]*$/);
  assert.match(one.token, /^[0-9a-f]{64}$/);
  assert.notEqual(one.token, two.token);
});

test('with Agent.CAInfo the tunnel reaches the HTTPS server; keep-alive requests pass', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assert.equal(answer.statusLine, 'HTTP/1.1 200 Connection Established');
  assert.deepEqual(Object.keys(answer.headers), []);
  const first = await get(answer.socket, { close: false });
  assert.equal(first.status, 200);
  // An IP address gets no SNI; ALPN offers http/1.1.
  assert.equal(first.body, 'hello from https {"path":"/through","servername":null,"alpn":"http/1.1"}');
  const second = await get(answer.socket);
  assert.equal(second.body, first.body);
  await socketClosed(answer.socket);
});

test('a host name is sent as SNI and verified', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const answer = await ask(tunnel, `localhost:${port}`);
  assert.equal(answer.status, 200, answer.body);
  const response = await get(answer.socket, { host: 'localhost' });
  assert.match(response.body, /"servername":"localhost"/);
});

test('bytes sent right after the CONNECT reach the server', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const after = 'GET /early HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';
  const answer = await ask(tunnel, `127.0.0.1:${port}`, { after });
  assert.equal(answer.status, 200);
  const response = await readResponse(answer.socket, { connect: false });
  assert.match(response.body, /"path":"\/early"/);
});

test('large bodies pass both ways, with backpressure', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assert.equal(answer.status, 200);
  const up = 6 * 1024 * 1024;
  const down = 8 * 1024 * 1024;
  answer.socket.write(
    `POST /count HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${up}\r\nX-Answer-Size: ${down}\r\n` +
      'Connection: close\r\n\r\n',
  );
  answer.socket.write(Buffer.alloc(up, 'u'));
  const response = await readResponse(answer.socket, { connect: false });
  assert.equal(response.status, 200);
  assert.equal(response.body.length, down);
  assert.ok(response.body.startsWith(`${up} ...`));
});

test('a missing or wrong token gets 407 and a closed connection', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const target = `127.0.0.1:${port}`;
  const wrong = `${tunnel.token.slice(0, -1)}${tunnel.token.endsWith('0') ? '1' : '0'}`;
  for (const request of [
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${wrong}\r\n\r\n`,
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${tunnel.token}x\r\n\r\n`,
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Basic ${tunnel.token}\r\n\r\n`,
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer\r\n\r\n`,
  ]) {
    const answer = await ask(tunnel, target, { request });
    assertFailure(answer, 407, 'token');
    assertRetry(answer, false);
    assert.equal(answer.statusLine, 'HTTP/1.1 407 Proxy Authentication Required');
    assert.doesNotMatch(answer.body, new RegExp(tunnel.token));
    await socketClosed(answer.socket);
  }
});

test('anything but CONNECT gets 405 and Connection: close', TIMEOUT, async (t) => {
  const tunnel = await tunnelFor(t, {});
  for (const method of ['GET', 'POST']) {
    const answer = await ask(tunnel, null, {
      request: `${method} / HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer ${tunnel.token}\r\nContent-Length: 0\r\n\r\n`,
    });
    assertFailure(answer, 405, 'CONNECT', method);
    assertRetry(answer, false);
    assert.equal(answer.headers.allow, 'CONNECT');
    await socketClosed(answer.socket);
  }
});

test('a target that is not host:port gets 400 with a text body', TIMEOUT, async (t) => {
  const tunnel = await tunnelFor(t, {});
  for (const target of ['example.com', 'example.com:0', 'example.com:65536', '[::1', '[nothing]:443', '/']) {
    const answer = await ask(tunnel, target);
    assertFailure(answer, 400, 'host:port', JSON.stringify(target));
    assertRetry(answer, false);
    await socketClosed(answer.socket);
  }
  const garbage = await ask(tunnel, null, { request: 'this is not http\r\n\r\n' });
  assert.equal(garbage.status, 400);
  assertRetry(garbage, false);
});

test('an untrusted certificate without Agent.CAInfo is a 502 naming host and TLS error', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  for (const env of [{}, { AGENT_CAINFO: '  ' }]) {
    const tunnel = await tunnelFor(t, env);
    const answer = await ask(tunnel, `127.0.0.1:${port}`);
    assertFailure(answer, 502);
    assertRetry(answer, false);
    assert.equal(
      answer.body,
      `TLS handshake with 127.0.0.1:${port} failed: self-signed certificate in certificate chain ` +
        '(SELF_SIGNED_CERT_IN_CHAIN); if the agent uses a private CA, set Agent.CAInfo',
    );
  }
});

test('Agent.CAInfo adds to NODE_EXTRA_CA_CERTS, and a CA file that does not help says so', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const both = await tunnelFor(t, { AGENT_CAINFO: OTHER_CA, NODE_EXTRA_CA_CERTS: TEST_CA });
  const ok = await ask(both, `127.0.0.1:${port}`);
  assert.equal(ok.status, 200, ok.body);
  assert.match((await get(ok.socket)).body, /^hello from https/);

  const other = await tunnelFor(t, { AGENT_CAINFO: OTHER_CA });
  const refused = await ask(other, `127.0.0.1:${port}`);
  assertFailure(refused, 502, `127.0.0.1:${port}`, 'SELF_SIGNED_CERT_IN_CHAIN', `Agent.CAInfo file ${OTHER_CA}`);
  assertRetry(refused, false);
});

test('a certificate for another name, or a server that does not speak TLS, is permanent', TIMEOUT, async (t) => {
  resolveTestNames(t);
  const { port } = await httpsServer(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const wrongName = await ask(tunnel, `${WRONG_NAME_HOST}:${port}`);
  assertFailure(wrongName, 502, `TLS handshake with ${WRONG_NAME_HOST}:${port} failed`, 'ERR_TLS_CERT_ALTNAME_INVALID');
  assertRetry(wrongName, false);

  const plain = await rawServer(t, (socket) => socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n')));
  const notTls = await ask(tunnel, `127.0.0.1:${plain}`);
  assertFailure(notTls, 502, `TLS handshake with 127.0.0.1:${plain} failed`, 'ERR_SSL_WRONG_VERSION_NUMBER');
  assertRetry(notTls, false);
});

test('a server that hangs up or resets during the handshake is transient', TIMEOUT, async (t) => {
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  for (const hangUp of [(socket) => socket.end(), (socket) => socket.resetAndDestroy()]) {
    const port = await rawServer(t, (socket) => socket.once('data', () => hangUp(socket)));
    const answer = await ask(tunnel, `127.0.0.1:${port}`);
    assertFailure(answer, 502, `TLS handshake with 127.0.0.1:${port} failed`, 'ECONNRESET');
    assertRetry(answer, true);
  }
});

test('an unreadable Agent.CAInfo or NODE_EXTRA_CA_CERTS file is a 502 naming it', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const missing = path.join(os.tmpdir(), `no-such-ca-${process.pid}.pem`);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: missing });
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assertFailure(answer, 502, 'Agent.CAInfo', missing);
  assertRetry(answer, false);
  // Again: the outcome is remembered, the answer the same.
  const again = await ask(tunnel, `127.0.0.1:${port}`);
  assertFailure(again, 502, 'Agent.CAInfo', missing);
  assertRetry(again, false);

  const notPem = await tunnelFor(t, { AGENT_CAINFO: fixture('README.md') });
  const noCertificate = await ask(notPem, `127.0.0.1:${port}`);
  assertFailure(noCertificate, 502, 'Agent.CAInfo', 'no PEM certificate');
  assertRetry(noCertificate, false);

  const extra = await tunnelFor(t, { AGENT_CAINFO: TEST_CA, NODE_EXTRA_CA_CERTS: missing });
  const extraMissing = await ask(extra, `127.0.0.1:${port}`);
  assertFailure(extraMissing, 502, 'NODE_EXTRA_CA_CERTS', missing);
  assertRetry(extraMissing, false);
});

test('an unreachable port is a 502 naming host:port', TIMEOUT, async (t) => {
  const port = await closedPort();
  const tunnel = await tunnelFor(t, {});
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assertFailure(answer, 502, `cannot reach 127.0.0.1:${port}`, 'ECONNREFUSED');
  assertRetry(answer, true);
});

test('a name that does not resolve is a transient 502 naming host:port', TIMEOUT, async (t) => {
  resolveTestNames(t);
  const tunnel = await tunnelFor(t, {});
  const answer = await ask(tunnel, `${MISSING_HOST}:443`);
  assertFailure(answer, 502, `cannot reach ${MISSING_HOST}:443`, 'ENOTFOUND');
  assertRetry(answer, true);
});

test('a server that never finishes the handshake is a 504 after the connect timeout', TIMEOUT, async (t) => {
  const silent = net.createServer((socket) => socket.on('error', () => {}));
  const port = await listen(silent);
  t.after(() => silent.close());
  const tunnel = await tunnelFor(t, {}, { connectTimeoutMs: 300 });
  const started = Date.now();
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assertFailure(answer, 504, 'timed out after 0.3 s', `TLS handshake with 127.0.0.1:${port}`);
  assertRetry(answer, true);
  assert.equal(answer.statusLine, 'HTTP/1.1 504 Gateway Timeout');
  assert.ok(Date.now() - started < 5000);
});

// --- the agent's proxy ----------------------------------------------------------------------
// The target is EXAMPLE_HOST (not loopback, so the proxy is used); the fake proxy resolves it
// to 127.0.0.1 and relays to the HTTPS server, which presents EXAMPLE_HOST's certificate.

const PASSWORD = 'pa55-w0rd-never-shown';

test("the tunnel goes through the agent's proxy with Basic auth", TIMEOUT, async (t) => {
  resolveTestNames(t);
  const { port } = await httpsServer(t);
  const proxy = await fakeProxy(t);
  const target = `${EXAMPLE_HOST}:${port}`;
  for (const passwordVariable of ['SECRET_AGENT_PROXYPASSWORD', 'AGENT_PROXYPASSWORD']) {
    const tunnel = await tunnelFor(t, {
      AGENT_CAINFO: EXAMPLE_CA,
      AGENT_PROXYURL: proxy.url,
      AGENT_PROXYUSERNAME: 'agent-user',
      [passwordVariable]: PASSWORD,
    });
    const answer = await ask(tunnel, target);
    assert.equal(answer.status, 200, answer.body);
    // SNI is the target's name, and its certificate is verified, through the proxy.
    const response = await get(answer.socket, { host: EXAMPLE_HOST });
    assert.equal(response.body, `hello from https {"path":"/through","servername":"${EXAMPLE_HOST}","alpn":"http/1.1"}`);
  }
  const basic = `Basic ${Buffer.from(`agent-user:${PASSWORD}`).toString('base64')}`;
  assert.deepEqual(proxy.seen, [
    { line: `CONNECT ${target} HTTP/1.1`, authorization: basic },
    { line: `CONNECT ${target} HTTP/1.1`, authorization: basic },
  ]);
});

test('without a proxy user name no Proxy-Authorization is sent', TIMEOUT, async (t) => {
  resolveTestNames(t);
  const { port } = await httpsServer(t);
  const proxy = await fakeProxy(t);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: EXAMPLE_CA, AGENT_PROXYURL: `${proxy.url}/` });
  assert.equal((await ask(tunnel, `${EXAMPLE_HOST}:${port}`)).status, 200);
  assert.deepEqual(proxy.seen, [{ line: `CONNECT ${EXAMPLE_HOST}:${port} HTTP/1.1`, authorization: undefined }]);
});

test("loopback targets never use the agent's proxy, even without a bypass list", TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const proxy = await fakeProxy(t);
  for (const list of [undefined, '[]', '["nothing\\\\.example"]']) {
    const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA, AGENT_PROXYURL: proxy.url, AGENT_PROXYBYPASSLIST: list });
    for (const target of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const answer = await ask(tunnel, target);
      assert.equal(answer.status, 200, answer.body);
      assert.match((await get(answer.socket)).body, /^hello from https/);
    }
  }
  assert.deepEqual(proxy.seen, []);
});

test('a target matching Agent.ProxyBypassList goes direct; invalid patterns are ignored', TIMEOUT, async (t) => {
  resolveTestNames(t);
  const { port } = await httpsServer(t);
  const proxy = await fakeProxy(t);
  const target = `${EXAMPLE_HOST}:${port}`;
  for (const list of [
    [`^HTTPS://ADB-1\\.example\\.test:${port}$`],
    ['(unclosed', 'nothing\\.example', '  \\.EXAMPLE\\.test:[0-9]+$  '],
  ]) {
    const tunnel = await tunnelFor(t, {
      AGENT_CAINFO: EXAMPLE_CA,
      AGENT_PROXYURL: proxy.url,
      AGENT_PROXYBYPASSLIST: JSON.stringify(list),
    });
    const answer = await ask(tunnel, target);
    assert.equal(answer.status, 200, answer.body);
    assert.match((await get(answer.socket, { host: EXAMPLE_HOST })).body, /^hello from https/);
  }
  assert.deepEqual(proxy.seen, []);
  // Lists that do not match (the old trailing-slash form; only an invalid pattern): through the proxy.
  for (const list of [[`^https://adb-1\\.example\\.test:${port}/$`], ['(unclosed']]) {
    const tunnel = await tunnelFor(t, {
      AGENT_CAINFO: EXAMPLE_CA,
      AGENT_PROXYURL: proxy.url,
      AGENT_PROXYBYPASSLIST: JSON.stringify(list),
    });
    assert.equal((await ask(tunnel, target)).status, 200);
  }
  assert.equal(proxy.seen.length, 2);
});

test('a proxy that answers 407 is a permanent 502 naming the proxy and status, without the password', TIMEOUT, async (t) => {
  const proxy = await fakeProxy(t, { refuse: 407 });
  const tunnel = await tunnelFor(t, {
    AGENT_PROXYURL: proxy.url,
    AGENT_PROXYUSERNAME: 'agent-user',
    SECRET_AGENT_PROXYPASSWORD: PASSWORD,
  });
  const answer = await ask(tunnel, `${EXAMPLE_HOST}:443`);
  assertFailure(answer, 502);
  assertRetry(answer, false);
  assert.equal(answer.body, `the agent's proxy ${proxy.url} refused the tunnel to ${EXAMPLE_HOST}:443: HTTP 407`);
  assert.deepEqual(proxy.seen, [
    {
      line: `CONNECT ${EXAMPLE_HOST}:443 HTTP/1.1`,
      authorization: `Basic ${Buffer.from(`agent-user:${PASSWORD}`).toString('base64')}`,
    },
  ]);
});

test('a proxy that answers 502 or 503 is a transient 502', TIMEOUT, async (t) => {
  for (const status of [502, 503]) {
    const proxy = await fakeProxy(t, { refuse: status });
    const tunnel = await tunnelFor(t, { AGENT_PROXYURL: proxy.url });
    const answer = await ask(tunnel, `${EXAMPLE_HOST}:443`);
    assertFailure(answer, 502, `refused the tunnel to ${EXAMPLE_HOST}:443: HTTP ${status}`);
    assertRetry(answer, true);
    assert.equal(proxy.seen.length, 1);
  }
});

test('an unreachable proxy is transient; a bad proxy URL or bypass list is a permanent 502 naming the setting', TIMEOUT, async (t) => {
  const target = `${EXAMPLE_HOST}:443`;
  const proxyPort = await closedPort();
  const cases = [
    [{ AGENT_PROXYURL: `http://agent-user:${PASSWORD}@127.0.0.1:${proxyPort}` }, true, [`proxy http://127.0.0.1:${proxyPort}`, target, 'ECONNREFUSED']],
    [{ AGENT_PROXYURL: `not a url ${PASSWORD}` }, false, ['Agent.ProxyUrl']],
    [{ AGENT_PROXYURL: 'socks5://127.0.0.1:1080' }, false, ['Agent.ProxyUrl', 'http://']],
    [{ AGENT_PROXYURL: 'http://127.0.0.1:1', AGENT_PROXYBYPASSLIST: 'localhost' }, false, ['Agent.ProxyBypassList']],
    [{ AGENT_PROXYURL: 'http://127.0.0.1:1', AGENT_PROXYBYPASSLIST: '{"a": 1}' }, false, ['Agent.ProxyBypassList']],
    [{ AGENT_PROXYURL: 'http://127.0.0.1:1', AGENT_PROXYBYPASSLIST: '["a", 1]' }, false, ['Agent.ProxyBypassList']],
  ];
  for (const [env, retry, patterns] of cases) {
    const tunnel = await tunnelFor(t, { ...env, SECRET_AGENT_PROXYPASSWORD: PASSWORD });
    const answer = await ask(tunnel, target);
    assertFailure(answer, 502, ...patterns);
    assertRetry(answer, retry);
    assert.ok(!answer.body.includes(PASSWORD), answer.body);
  }
});

// --- errors and lifetime ----------------------------------------------------------------------

test('clients that vanish mid-way do not disturb the tunnel', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const silent = net.createServer((socket) => socket.on('error', () => {}));
  const silentPort = await listen(silent);
  t.after(() => silent.close());
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  const [host, tunnelPort] = tunnel.address.split(':');
  const vanish = (data) =>
    new Promise((resolve) => {
      const socket = net.connect(Number(tunnelPort), host, () => {
        tunnel.testSockets.add(socket);
        socket.write(data);
        setTimeout(() => {
          socket.resetAndDestroy();
          resolve();
        }, 50);
      });
      socket.on('error', () => {});
    });
  await vanish(`CONNECT 127.0.0.1:${silentPort} HTTP/1.1\r\nProxy-Authorization: Bearer ${tunnel.token}\r\n\r\n`);
  await vanish('CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-');
  const open = await ask(tunnel, `127.0.0.1:${port}`);
  open.socket.resetAndDestroy();
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assert.equal(answer.status, 200);
  assert.match((await get(answer.socket)).body, /^hello from https/);
});

/** Runs a Node script in a fresh process; resolves with its exit and output. */
function runNode(args, options = {}) {
  return new Promise((resolve) => {
    childProcess.execFile(process.execPath, args, { timeout: 10000, ...options }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr }),
    );
  });
}

test('close() ends open tunnels, and the server alone never keeps a process alive', TIMEOUT, async (t) => {
  const { server, port } = await httpsServer(t);
  const serverSockets = [];
  server.on('secureConnection', (socket) => serverSockets.push(socket));
  const script = `
    const net = require('net');
    const { startTunnel } = require(${JSON.stringify(LAUNCHER)});
    startTunnel({ AGENT_CAINFO: ${JSON.stringify(TEST_CA)} }).then(async (tunnel) => {
      await startTunnel({}); // never closed
      const [host, port] = tunnel.address.split(':');
      const socket = net.connect(Number(port), host);
      socket.write('CONNECT 127.0.0.1:${port} HTTP/1.1\\r\\nProxy-Authorization: Bearer ' + tunnel.token + '\\r\\n\\r\\n');
      socket.once('data', (data) => {
        console.log(String(data).split('\\r\\n')[0]);
        socket.on('close', () => console.log('client closed'));
        tunnel.close();
      });
    });`;
  const started = Date.now();
  const result = await runNode(['-e', script]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'HTTP/1.1 200 Connection Established\nclient closed\n');
  assert.ok(Date.now() - started < 5000);
  assert.equal(serverSockets.length, 1);
  await socketClosed(serverSockets[0]);
});

// --- through the real launcher ----------------------------------------------------------------

function makeTaskDir(t, binaryScript) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-tunnel-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.copyFileSync(LAUNCHER, path.join(dir, 'launcher.js'));
  fs.writeFileSync(path.join(dir, 'launcher.json'), JSON.stringify({ binary: 'fake-task' }));
  fs.mkdirSync(path.join(dir, 'bin', HOST), { recursive: true });
  fs.writeFileSync(path.join(dir, 'bin', HOST, 'fake-task'), `#!${process.execPath}\n${binaryScript}`);
  return dir;
}

/** The binary's side of the protocol, in Node: one GET through the tunnel to `target`. */
const FETCH_THROUGH_TUNNEL = `
const net = require('net');
function fetchThroughTunnel(target, onSocket) {
  return new Promise((resolve, reject) => {
    const [host, port] = process.env.AZDO_DATA_TASKS_TLS_TUNNEL.split(':');
    const token = process.env.AZDO_DATA_TASKS_TLS_TUNNEL_TOKEN;
    const socket = net.connect(Number(port), host);
    socket.on('error', reject);
    socket.write('CONNECT ' + target + ' HTTP/1.1\\r\\nHost: ' + target + '\\r\\nProxy-Authorization: Bearer ' + token + '\\r\\n\\r\\n');
    let text = '';
    let tunnelUp = false;
    socket.on('data', (data) => {
      text += data;
      if (!tunnelUp && text.includes('\\r\\n\\r\\n')) {
        if (!text.startsWith('HTTP/1.1 200 ')) return reject(new Error(text));
        tunnelUp = true;
        text = '';
        if (onSocket) return onSocket(socket, resolve);
        socket.write('GET / HTTP/1.1\\r\\nHost: ' + host + '\\r\\nConnection: close\\r\\n\\r\\n');
      }
    });
    socket.on('end', () => resolve(text));
  });
}
`;

test('end to end: the binary fetches from an HTTPS server through the launcher', { ...TIMEOUT, skip: !POSIX }, async (t) => {
  const { port } = await httpsServer(t);
  const dir = makeTaskDir(
    t,
    `${FETCH_THROUGH_TUNNEL}
fetchThroughTunnel('127.0.0.1:${port}').then((text) => {
  console.log(text.split('\\r\\n\\r\\n')[1]);
  process.exit(4);
}, (err) => { console.error(String(err)); process.exit(9); });`,
  );
  const result = await runNode([path.join(dir, 'launcher.js')], { env: { ...process.env, AGENT_CAINFO: TEST_CA } });
  assert.equal(result.code, 4, result.stdout + result.stderr);
  assert.equal(result.stdout, 'hello from https {"path":"/","servername":null,"alpn":"http/1.1"}\n');
});

test('end to end: the child sees the launcher environment plus exactly the two variables', { ...TIMEOUT, skip: !POSIX }, async (t) => {
  const dir = makeTaskDir(t, 'process.stdout.write(JSON.stringify(process.env));');
  const env = { PATH: process.env.PATH, INPUT_FOO: 'foo', SECRET_BAR: 'bar', ENDPOINT_AUTH_X: '{"scheme":"x"}', EMPTY: '' };
  const result = await runNode([path.join(dir, 'launcher.js')], { env });
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout);
  const { AZDO_DATA_TASKS_TLS_TUNNEL: address, AZDO_DATA_TASKS_TLS_TUNNEL_TOKEN: token, ...rest } = seen;
  assert.deepEqual(rest, env);
  assert.match(address, /^127\.0\.0\.1:[0-9]+$/);
  assert.match(token, /^[0-9a-f]{64}$/);
});

test('end to end: an open tunnel does not keep the launcher alive after the child exits', { ...TIMEOUT, skip: !POSIX }, async (t) => {
  const { server, port } = await httpsServer(t);
  const serverSockets = [];
  server.on('secureConnection', (socket) => serverSockets.push(socket));
  // The child starts a grandchild that holds a tunnel open, then exits 0.
  const dir = makeTaskDir(
    t,
    `const { spawn } = require('child_process');
if (process.argv[2] === 'hold') {
  ${FETCH_THROUGH_TUNNEL}
  fetchThroughTunnel('127.0.0.1:${port}', () => console.log('holding'));
  setTimeout(() => {}, 8000);
} else {
  const grandchild = spawn(process.execPath, [__filename, 'hold'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  grandchild.stdout.once('data', () => { console.log('grandchild ' + grandchild.pid); process.exit(0); });
}`,
  );
  const started = Date.now();
  const result = await runNode([path.join(dir, 'launcher.js')], { env: { ...process.env, AGENT_CAINFO: TEST_CA } });
  const elapsed = Date.now() - started;
  const pid = Number((/grandchild (\d+)/.exec(result.stdout) || [])[1]);
  t.after(() => {
    try {
      process.kill(pid);
    } catch {
      /* gone */
    }
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(pid > 0, JSON.stringify(result));
  assert.ok(elapsed < 5000, `${elapsed} ms`);
  assert.equal(serverSockets.length, 1);
  await socketClosed(serverSockets[0]);
});

test('end to end: a binary that cannot start fails the task and the launcher exits', { ...TIMEOUT, skip: !POSIX }, async (t) => {
  const dir = makeTaskDir(t, '');
  const binary = path.join(dir, 'bin', HOST, 'fake-task');
  fs.rmSync(binary);
  fs.mkdirSync(binary); // exists, yet cannot be executed
  const result = await runNode([path.join(dir, 'launcher.js')]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stdout, /^##vso\[task\.logissue type=error;\]cannot start .*fake-task/m);
});

test('end to end: a tunnel that cannot listen fails the task before the binary runs', { ...TIMEOUT, skip: !POSIX }, async (t) => {
  const dir = makeTaskDir(t, 'console.log("binary ran");');
  const preload = path.join(dir, 'no-listen.js');
  fs.writeFileSync(
    preload,
    `require('http').Server.prototype.listen = function () {
      process.nextTick(() => this.emit('error', Object.assign(new Error('listen EPERM: operation not permitted 127.0.0.1'), { code: 'EPERM' })));
      return this;
    };`,
  );
  const result = await runNode(['--require', preload, path.join(dir, 'launcher.js')]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stdout,
    "##vso[task.logissue type=error;]cannot start the launcher's TLS tunnel on 127.0.0.1: listen EPERM: operation not permitted 127.0.0.1\n" +
      '##vso[task.complete result=Failed;]\n',
  );
});

// --- trust: the OS store, as the development builds read it ----------------------------

const pemsOf = (file) => fs.readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);

/** A temp folder holding `files` ({name: content}) and symlinks ({name: {link: target}}). */
function certFolder(t, files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-certs-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === 'object') fs.symlinkSync(content.link, path.join(dir, name));
    else fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

test('unixSystemCertificates: the first default bundle and the default folders, each file once', { skip: !POSIX }, (t) => {
  const missing = path.join(os.tmpdir(), `no-such-bundle-${process.pid}.pem`);
  const dir = certFolder(t, {
    'example.pem': fs.readFileSync(EXAMPLE_CA, 'utf8'),
    'a1b2c3d4.0': { link: 'example.pem' }, // a hash-named link, as `openssl rehash` makes
    'README': 'not a certificate',
  });
  const found = launcher.unixSystemCertificates({}, [missing, TEST_CA, OTHER_CA], [dir, missing]);
  assert.deepEqual(found, [...pemsOf(TEST_CA), ...pemsOf(EXAMPLE_CA)]);
  // No bundle and no folder: no system store.
  assert.deepEqual(launcher.unixSystemCertificates({}, [missing], [missing]), []);
});

test('unixSystemCertificates: SSL_CERT_FILE and SSL_CERT_DIR replace the defaults', { skip: !POSIX }, (t) => {
  const dir = certFolder(t, { 'example.pem': fs.readFileSync(EXAMPLE_CA, 'utf8') });
  const empty = certFolder(t, {});
  const defaults = [[TEST_CA], [dir]];
  assert.deepEqual(launcher.unixSystemCertificates({ SSL_CERT_FILE: OTHER_CA }, ...defaults), pemsOf(OTHER_CA));
  assert.deepEqual(
    launcher.unixSystemCertificates({ SSL_CERT_DIR: `${empty}:${dir}` }, [TEST_CA], [empty]),
    pemsOf(EXAMPLE_CA),
    'SSL_CERT_DIR holds folders separated by colons',
  );
  assert.deepEqual(
    launcher.unixSystemCertificates({ SSL_CERT_FILE: OTHER_CA, SSL_CERT_DIR: dir }, [TEST_CA], []),
    [...pemsOf(OTHER_CA), ...pemsOf(EXAMPLE_CA)],
  );
  // Set but unreadable: nothing from it, and still not the defaults (as OpenSSL and rustls).
  const missing = path.join(os.tmpdir(), `no-such-bundle-${process.pid}.pem`);
  assert.deepEqual(launcher.unixSystemCertificates({ SSL_CERT_FILE: missing }, ...defaults), []);
  // Blank counts as not set.
  assert.deepEqual(launcher.unixSystemCertificates({ SSL_CERT_FILE: ' ', SSL_CERT_DIR: '' }, ...defaults), [
    ...pemsOf(TEST_CA),
    ...pemsOf(EXAMPLE_CA),
  ]);
});

test('systemCertificates: Linux reads the store itself; macOS and Windows only where Node can', () => {
  const withApi = { getCACertificates: (type) => (type === 'system' ? ['from Node'] : []) };
  const withoutApi = {};
  for (const platform of ['darwin', 'win32']) {
    assert.deepEqual(launcher.systemCertificates(withApi, {}, platform), ['from Node'], platform);
    assert.deepEqual(launcher.systemCertificates(withoutApi, { SSL_CERT_FILE: TEST_CA }, platform), [], platform);
  }
  for (const tls of [withApi, withoutApi]) {
    assert.deepEqual(launcher.systemCertificates(tls, { SSL_CERT_FILE: TEST_CA }, 'linux'), pemsOf(TEST_CA));
  }
});

test('on Linux, without Agent.CAInfo, the tunnel trusts a CA of the system store on every Node version', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const dir = certFolder(t, { 'test-ca.pem': fs.readFileSync(TEST_CA, 'utf8') });
  for (const env of [{ SSL_CERT_FILE: TEST_CA }, { SSL_CERT_DIR: dir }]) {
    const tunnel = await tunnelFor(t, env, { platform: 'linux' });
    const answer = await ask(tunnel, `127.0.0.1:${port}`);
    assert.equal(answer.status, 200, `${JSON.stringify(env)}: ${answer.body}`);
    assert.match((await get(answer.socket)).body, /^hello from https/);
  }
  // Node's bundled roots and NODE_EXTRA_CA_CERTS still count next to the system store.
  const extra = await tunnelFor(t, { SSL_CERT_FILE: OTHER_CA, NODE_EXTRA_CA_CERTS: TEST_CA }, { platform: 'linux' });
  const viaExtra = await ask(extra, `127.0.0.1:${port}`);
  assert.equal(viaExtra.status, 200, viaExtra.body);
  // A system store without the CA does not help.
  const other = await tunnelFor(t, { SSL_CERT_FILE: OTHER_CA }, { platform: 'linux' });
  const refused = await ask(other, `127.0.0.1:${port}`);
  assertFailure(refused, 502, 'SELF_SIGNED_CERT_IN_CHAIN', 'set Agent.CAInfo');
});

test('warmUp reads the settings early; a bad one still fails the CONNECT that needs it', TIMEOUT, async (t) => {
  const { port } = await httpsServer(t);
  const missing = path.join(os.tmpdir(), `no-such-ca-${process.pid}.pem`);
  const tunnel = await tunnelFor(t, { AGENT_CAINFO: missing });
  tunnel.warmUp();
  const answer = await ask(tunnel, `127.0.0.1:${port}`);
  assertFailure(answer, 502, 'Agent.CAInfo', missing);
  const good = await tunnelFor(t, { AGENT_CAINFO: TEST_CA });
  good.warmUp();
  assert.equal((await ask(good, `127.0.0.1:${port}`)).status, 200);
});
