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

// ---------------------------------------------------------------------------------------
// TLS tunnel (protocol: docs/tls-tunnel.md; the task SDK's Rust side is its client).
//
// Why: every task folder carries its binary for five platforms, and a TLS stack in each
// binary (rustls + ring + webpki + a platform verifier: ~950 KB of ~2.3 MB) would cost about
// 12 MB of the 25 MiB .vsix limit. Every agent runs Node anyway, and Node has TLS. So release
// binaries have none: for each https origin the binary asks this launcher, like an HTTP
// CONNECT proxy on 127.0.0.1, for a tunnel; the launcher opens the TLS connection (verifying
// the certificate, honouring the agent's CA file and proxy) and relays bytes:
//   binary <-plain HTTP/1.1-> launcher <-TLS-> server.
// The token keeps other local users' processes from using the tunnel.
// ---------------------------------------------------------------------------------------

const TUNNEL_ENV = 'AZDO_DATA_TASKS_TLS_TUNNEL';
const TUNNEL_TOKEN_ENV = 'AZDO_DATA_TASKS_TLS_TUNNEL_TOKEN';
const TUNNEL_CONNECT_TIMEOUT_MS = 30000;
/** How long a refused client may take to read the answer and hang up. */
const REFUSED_LINGER_MS = 5000;
/**
 * On a refusal that retrying cannot fix, so that the client gives up at once instead of
 * retrying: bad requests to the tunnel (400, 405, 407), the agent's settings (CA files, proxy
 * URL, bypass list), certificate or TLS protocol failures, and the agent's proxy asking for
 * other credentials (407). Transient failures (refused, reset, DNS, timeouts, proxy 502/503)
 * go without it.
 */
const NO_RETRY = Object.freeze({ 'X-Tunnel-Retry': 'no' });
/** Verification failures that a private CA (Agent.CAInfo) would fix. */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

// Loaded on first use: a launcher that fails before spawning never pays for them.
const lazy = {
  get http() {
    return require('http');
  },
  get net() {
    return require('net');
  },
  get tls() {
    return require('tls');
  },
};

function ignore() {}

/**
 * Why a tunnel could not be opened: the HTTP status to answer, a one-line message, and
 * whether a retry could help (`permanent`: it cannot; the answer carries NO_RETRY).
 */
class TunnelError extends Error {
  constructor(status, message, { permanent = false } = {}) {
    super(message);
    this.status = status;
    this.permanent = permanent;
  }
}

/** A TunnelError that retrying cannot fix (a setting, a certificate). */
function permanentError(status, message) {
  return new TunnelError(status, message, { permanent: true });
}

/**
 * Node's codes for X.509 verification failures (tls.md, "X509 certificate error codes"),
 * without OUT_OF_MEM; UNSPECIFIED is Node's code for a verification error it has no name for.
 */
const CERTIFICATE_FAILURE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'UNSPECIFIED',
]);

/** TLS-layer codes that can pass: the peer hung up mid-handshake, an internal error, a corrupt record. */
const TRANSIENT_TLS_CODES = new Set([
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  'ERR_SSL_UNEXPECTED_EOF_WHILE_READING',
  'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
  'ERR_SSL_BAD_RECORD_MAC',
]);

/**
 * Whether a TLS handshake error is permanent (retrying the same connection cannot fix it).
 * The rule: the error's `code` is one of Node's X.509 verification codes
 * (CERTIFICATE_FAILURE_CODES), or starts with `ERR_TLS_` (Node's TLS checks, e.g.
 * ERR_TLS_CERT_ALTNAME_INVALID) or `ERR_SSL_` (OpenSSL's protocol errors and the server's
 * alerts, e.g. ERR_SSL_WRONG_VERSION_NUMBER, ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE), except the
 * few in TRANSIENT_TLS_CODES. Everything else (ECONNRESET when the server hangs up during the
 * handshake, EPIPE, ETIMEDOUT, no code) is transient.
 */
function isPermanentTlsFailure(err) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  if (CERTIFICATE_FAILURE_CODES.has(code)) return true;
  if (TRANSIENT_TLS_CODES.has(code)) return false;
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_');
}

/** A socket error as text; Node's happy-eyeballs AggregateError has an empty message. */
function describeError(err) {
  if (err && err.message) return err.message;
  if (err && Array.isArray(err.errors) && err.errors.length > 0) {
    return err.errors.map(describeError).join('; ');
  }
  return (err && err.code) || String(err);
}

/**
 * `host:port` of a CONNECT request (IPv6 as `[::1]:443`) as {host, port, authority}, or null
 * when it is not one (port 1..65535).
 */
function parseTunnelTarget(target) {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(String(target));
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  let host;
  if (match[1] !== undefined) {
    if (!lazy.net.isIPv6(match[1])) return null;
    host = match[1];
  } else {
    if (match[2].length > 253 || !/^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_.])?$/.test(match[2])) {
      return null;
    }
    host = match[2];
  }
  const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { host, port, authority };
}

/**
 * The string the agent's bypass regexes are matched against, as the agent builds it
 * (AgentWebProxy.IsMatchInBypassList): `scheme://host`, plus `:port` only when the port is not
 * the scheme's default; no trailing slash, no path. .NET's Uri.Host is lower case, IPv6 in
 * brackets.
 */
function proxyTargetUrl(host, port) {
  const lower = host.toLowerCase();
  const name = lower.includes(':') ? `[${lower}]` : lower;
  return port === 443 ? `https://${name}` : `https://${name}:${port}`;
}

/**
 * Whether .NET's Uri.IsLoopback holds for a host, which the agent's proxy always bypasses:
 * the names `localhost` and `loopback` (any case; .NET treats both as loopback), IPv4
 * 127.0.0.0/8, IPv6 ::1, and the IPv4-compatible/mapped forms of 127.0.0.1
 * (::127.0.0.1, ::ffff:127.0.0.1), as .NET's IPv6 parser does.
 */
function isLoopbackHost(host) {
  const lower = String(host).toLowerCase();
  if (lower === 'localhost' || lower === 'loopback') return true;
  const net = lazy.net;
  if (net.isIPv4(lower)) return lower.startsWith('127.');
  if (!net.isIPv6(lower)) return false;
  // The WHATWG URL parser writes IPv6 in its canonical compressed form.
  let canonical;
  try {
    canonical = new URL(`http://[${lower}]/`).hostname;
  } catch {
    return false;
  }
  return ['[::1]', '[::7f00:1]', '[::ffff:7f00:1]'].includes(canonical);
}

/**
 * Whether a tunnel to host:port goes through the agent's proxy (`settings` from
 * proxySettings(), null without a proxy). As the agent's AgentWebProxy.IsBypassed: not without
 * a proxy, not to a loopback host, not when a bypass regex matches proxyTargetUrl().
 */
function shouldUseProxy(settings, host, port) {
  if (!settings) return false;
  if (isLoopbackHost(host)) return false;
  const url = proxyTargetUrl(host, port);
  return !settings.bypass.some((re) => re.test(url));
}

function nonBlank(value) {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

/** The PEM certificates in a trust file; `setting` names the file in messages. */
function readPemCertificates(file, setting) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw permanentError(502, `cannot read the ${setting} file ${file}: ${err.message}`);
  }
  const certificates = text.match(PEM_CERTIFICATE);
  if (!certificates) throw permanentError(502, `the ${setting} file ${file} holds no PEM certificate`);
  return certificates;
}

/**
 * Where Linux keeps its trust store when SSL_CERT_FILE and SSL_CERT_DIR are not set: the first
 * bundle file that exists, then every certificate file in the folders that exist. The same
 * places, in the same order, as the development builds' verifier looks (rustls-native-certs
 * through openssl-probe), so that both trust the same system roots.
 */
const LINUX_CA_FILES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Alpine (ca-certificates), Arch
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // RHEL, CentOS, Fedora
  '/etc/pki/tls/certs/ca-bundle.crt', // older Fedora and RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE, SLES
  '/etc/pki/tls/cacert.pem',
  '/etc/ssl/cert.pem', // Alpine
];
const LINUX_CA_DIRS = ['/etc/ssl/certs', '/etc/pki/tls/certs'];

/** The PEM certificates in a file, or none when it cannot be read (a system store is best effort). */
function pemCertificatesIfReadable(file) {
  try {
    return fs.readFileSync(file, 'utf8').match(PEM_CERTIFICATE) || [];
  } catch {
    return [];
  }
}

/**
 * The certificates of a Unix system trust store, found the way OpenSSL and the development
 * builds find it: with SSL_CERT_FILE (a PEM bundle) and/or SSL_CERT_DIR (folders separated by
 * `:`, every file in each; not recursive) set, those and nothing else; otherwise the first of
 * `files` that exists plus every file in those of `dirs` that exist. A file reached twice
 * (the hash-named links in a certificate folder) is read once; unreadable files and files
 * without PEM certificates are skipped.
 */
function unixSystemCertificates(env, files = LINUX_CA_FILES, dirs = LINUX_CA_DIRS) {
  const certFile = nonBlank(env.SSL_CERT_FILE);
  const certDirs = (nonBlank(env.SSL_CERT_DIR) || '').split(':').filter((d) => d !== '');
  let readFiles;
  let readDirs;
  if (certFile || certDirs.length > 0) {
    readFiles = certFile ? [certFile] : [];
    readDirs = certDirs;
  } else {
    const bundle = files.find((file) => exists(file));
    readFiles = bundle ? [bundle] : [];
    readDirs = dirs;
  }
  const seen = new Set();
  const firstVisit = (file) => {
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return false;
    }
    const id = `${stat.dev}:${stat.ino}`;
    if (!stat.isFile() || seen.has(id)) return false;
    seen.add(id);
    return true;
  };
  const certificates = [];
  for (const file of readFiles) {
    if (firstVisit(file)) certificates.push(...pemCertificatesIfReadable(file));
  }
  for (const dir of readDirs) {
    let names;
    try {
      names = fs.readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const file = path.join(dir, name);
      if (firstVisit(file)) certificates.push(...pemCertificatesIfReadable(file));
    }
  }
  return certificates;
}

/**
 * The OS trust store: on Windows and macOS where this Node can read it
 * (tls.getCACertificates, Node >= 22.15 / 23.10), else none (Node has no other way to reach
 * the Keychain or the Windows store); on Linux and other Unix systems read by
 * unixSystemCertificates() on every Node version, as the development builds read it.
 */
function systemCertificates(tls, env, platform) {
  if (platform !== 'win32' && platform !== 'darwin') return unixSystemCertificates(env);
  if (typeof tls.getCACertificates !== 'function') return [];
  try {
    return tls.getCACertificates('system');
  } catch {
    return [];
  }
}

/**
 * PEM certificates without repeats, however their lines are wrapped: the system store mostly
 * repeats Node's bundled roots, and each certificate costs parsing time.
 */
function uniqueCertificates(pems) {
  const byBody = new Map();
  for (const pem of pems) {
    const body = pem.replace(/-----[A-Z ]+-----|\s+/g, '');
    if (!byBody.has(body)) byBody.set(body, pem);
  }
  return [...byBody.values()];
}

/**
 * The secure context with the trusted CAs, or undefined for Node's defaults (protocol,
 * "Trust"): Node's bundled roots, NODE_EXTRA_CA_CERTS, the OS store (systemCertificates) and
 * the Agent.CAInfo file. Throws a TunnelError when a trust file the agent names is unusable.
 */
function trustContext(env, platform = process.platform) {
  const tls = lazy.tls;
  const system = systemCertificates(tls, env, platform);
  const caInfo = nonBlank(env.AGENT_CAINFO);
  if (!caInfo && system.length === 0) return undefined;
  const extraFile = nonBlank(env.NODE_EXTRA_CA_CERTS);
  // An explicit `ca` replaces Node's defaults, NODE_EXTRA_CA_CERTS included: list them all.
  const ca = uniqueCertificates([
    ...tls.rootCertificates,
    ...(extraFile ? readPemCertificates(extraFile, 'NODE_EXTRA_CA_CERTS') : []),
    ...system,
    ...(caInfo ? readPemCertificates(caInfo, 'Agent.CAInfo') : []),
  ]);
  try {
    return tls.createSecureContext({ ca });
  } catch (err) {
    const source = caInfo ? `the Agent.CAInfo file ${caInfo}` : 'the system trust store';
    throw permanentError(502, `cannot use the certificates of ${source}: ${describeError(err)}`);
  }
}

/** The agent's proxy settings, or null without one. Throws a TunnelError when invalid. */
function proxySettings(env) {
  const raw = nonBlank(env.AGENT_PROXYURL);
  if (!raw) return null;
  let url;
  try {
    url = new URL(raw);
  } catch {
    // The value is not echoed: it may carry credentials.
    throw permanentError(502, "the agent's proxy setting Agent.ProxyUrl is not a valid URL");
  }
  if (url.protocol !== 'http:') {
    throw permanentError(
      502,
      `the agent's proxy setting Agent.ProxyUrl must be an http:// URL, not ${url.protocol}`,
    );
  }
  const bypass = [];
  const list = nonBlank(env.AGENT_PROXYBYPASSLIST);
  if (list) {
    let patterns;
    try {
      patterns = JSON.parse(list);
    } catch (err) {
      patterns = err;
    }
    if (!Array.isArray(patterns) || patterns.some((p) => typeof p !== 'string')) {
      throw permanentError(
        502,
        "the agent's setting Agent.ProxyBypassList is not a JSON array of regular expressions",
      );
    }
    // As the agent: trimmed, blank ones skipped, case-insensitive, and a pattern that does not
    // compile is ignored (the agent eats the exception), so the agent and the tunnel agree on
    // which hosts bypass the proxy.
    for (const pattern of patterns) {
      const trimmed = pattern.trim();
      if (trimmed === '') continue;
      try {
        bypass.push(new RegExp(trimmed, 'i'));
      } catch {
        /* ignored, as the agent does */
      }
    }
  }
  const user = env.AGENT_PROXYUSERNAME;
  const password = env.AGENT_PROXYPASSWORD || env.SECRET_AGENT_PROXYPASSWORD || '';
  return {
    display: `${url.protocol}//${url.host}`,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port) || 80,
    authorization: user ? `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` : null,
    bypass,
  };
}

/** Computes once, remembering an error as well as a value. */
function once(compute) {
  let outcome;
  return () => {
    if (!outcome) {
      try {
        outcome = { value: compute() };
      } catch (err) {
        outcome = { error: err };
      }
    }
    if (outcome.error) throw outcome.error;
    return outcome.value;
  };
}

function asTunnelError(err) {
  return err instanceof TunnelError ? err : new TunnelError(502, `launcher tunnel: ${describeError(err)}`);
}

/**
 * Opens a verified TLS connection to `target`, through the agent's proxy unless bypassed.
 * Calls `done(error, tlsSocket)` once; `error` is a TunnelError. Returns a function that
 * abandons the attempt (the client went away).
 */
function openTls(target, tunnel, done) {
  const { host, port, authority } = target;
  const opened = [];
  const open = (socket) => {
    socket.on('error', ignore);
    tunnel.track(socket);
    opened.push(socket);
    return socket;
  };
  let finished = false;
  let phase = `connecting to ${authority}`;
  const finish = (err, socket) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (err) opened.forEach((s) => s.destroy());
    done(err, socket);
  };
  let timer;
  // Settings first: reading the trust store takes a while once, and is not the network's time.
  let proxy;
  let secureContext;
  try {
    const settings = tunnel.proxySettings();
    proxy = shouldUseProxy(settings, host, port) ? settings : null;
    secureContext = tunnel.trustContext();
  } catch (err) {
    finish(asTunnelError(err));
    return () => finish(new TunnelError(502, 'abandoned'));
  }
  timer = setTimeout(() => {
    const seconds = Math.round(tunnel.timeoutMs / 100) / 10;
    finish(new TunnelError(504, `timed out after ${seconds} s ${phase}`));
  }, tunnel.timeoutMs);
  timer.unref();

  const startTls = (socket) => {
    phase = `in the TLS handshake with ${authority}`;
    const options = { socket, host, ALPNProtocols: ['http/1.1'] };
    if (!lazy.net.isIP(host)) options.servername = host;
    if (secureContext) options.secureContext = secureContext;
    let tlsSocket;
    try {
      tlsSocket = open(lazy.tls.connect(options));
    } catch (err) {
      finish(asTunnelError(err));
      return;
    }
    tlsSocket.on('error', (err) => {
      let message = `TLS handshake with ${authority} failed: ${describeError(err)}`;
      if (err.code && !message.includes(err.code)) message += ` (${err.code})`;
      if (UNTRUSTED_CERTIFICATE_CODES.has(err.code)) {
        const caInfo = nonBlank(tunnel.env.AGENT_CAINFO);
        message += caInfo
          ? `; check that the Agent.CAInfo file ${caInfo} holds the CA that issued the server's certificate`
          : '; if the agent uses a private CA, set Agent.CAInfo';
      }
      finish(new TunnelError(502, message, { permanent: isPermanentTlsFailure(err) }));
    });
    tlsSocket.once('secureConnect', () => finish(null, tlsSocket));
  };

  if (!proxy) {
    const socket = open(lazy.net.connect({ host, port }));
    socket.on('error', (err) =>
      finish(new TunnelError(502, `cannot reach ${authority}: ${describeError(err)}`)),
    );
    socket.once('connect', () => {
      socket.setNoDelay(true);
      startTls(socket);
    });
  } else {
    phase = `opening a tunnel to ${authority} through the agent's proxy ${proxy.display}`;
    const headers = { Host: authority };
    if (proxy.authorization) headers['Proxy-Authorization'] = proxy.authorization;
    const request = lazy.http.request({
      host: proxy.host,
      port: proxy.port,
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
    });
    opened.push(request);
    request.on('socket', open);
    request.on('error', (err) =>
      finish(
        new TunnelError(
          502,
          `cannot reach the agent's proxy ${proxy.display} (for ${authority}): ${describeError(err)}`,
        ),
      ),
    );
    request.on('connect', (response, socket, head) => {
      response.on('error', ignore);
      if (response.statusCode !== 200) {
        const refusal = `the agent's proxy ${proxy.display} refused the tunnel to ${authority}`;
        // 407: the proxy wants other credentials (Agent.ProxyUsername/Password); a retry sends
        // the same ones. Other refusals (502, 503…) may pass.
        const permanent = response.statusCode === 407;
        finish(new TunnelError(502, `${refusal}: HTTP ${response.statusCode}`, { permanent }));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      startTls(socket);
    });
    request.end();
  }
  return () => finish(new TunnelError(502, 'abandoned'));
}

/** Answers a request the tunnel does not serve, then closes the connection. */
function refuse(socket, status, message, extraHeaders = {}) {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = String(message).replace(/[\r\n]+/g, ' ');
  const headers = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
    ...extraHeaders,
  };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(`HTTP/1.1 ${status} ${lazy.http.STATUS_CODES[status]}\r\n${lines.join('')}\r\n${body}`);
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}

/** Relays bytes both ways; an end is passed on, an error or a close ends both. */
function relay(client, upstream) {
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  // `end` after a close flushes what is still buffered for the other side.
  client.on('close', () => upstream.end());
  upstream.on('close', () => client.end());
  client.pipe(upstream);
  upstream.pipe(client);
}

/** Bearer token check in constant time (hashes make the lengths equal). */
function tokenMatches(header, expectedDigest) {
  const match = /^Bearer +(\S+) *$/i.exec(typeof header === 'string' ? header : '');
  const given = crypto.createHash('sha256').update(match ? match[1] : '').digest();
  return crypto.timingSafeEqual(given, expectedDigest) && match !== null;
}

function handleConnect(tunnel, request, client, head) {
  request.on('error', ignore);
  if (!tokenMatches(request.headers['proxy-authorization'], tunnel.tokenDigest)) {
    refuse(client, 407, 'the tunnel token is missing or wrong', {
      'Proxy-Authenticate': 'Bearer',
      ...NO_RETRY,
    });
    return;
  }
  const target = parseTunnelTarget(request.url);
  if (!target) {
    const shown = JSON.stringify(String(request.url).slice(0, 300));
    const rule = 'the tunnel target must be host:port with a port 1..65535 (IPv6 as [::1]:443)';
    refuse(client, 400, `${rule}, not ${shown}`, NO_RETRY);
    return;
  }
  const onClientGone = () => abandon();
  const abandon = openTls(target, tunnel, (err, upstream) => {
    client.removeListener('close', onClientGone);
    if (err) {
      refuse(client, err.status, err.message, err.permanent ? NO_RETRY : {});
      return;
    }
    if (client.destroyed || tunnel.closed) {
      upstream.destroy();
      return;
    }
    client.setNoDelay(true);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    relay(client, upstream);
  });
  client.once('close', onClientGone);
}

/**
 * Starts the tunnel on 127.0.0.1 (ephemeral port) for a launcher whose environment is `env`.
 * Resolves to {address: '127.0.0.1:<port>', token, close(), warmUp()}; close() stops the
 * server and destroys every open connection. The server never keeps the process alive on its own.
 * `options.connectTimeoutMs` (default 30 s) and `options.platform` (default process.platform:
 * where the OS trust store comes from) exist for tests.
 */
function startTunnel(env, options = {}) {
  const token = crypto.randomBytes(32).toString('hex');
  const sockets = new Set();
  const tunnel = {
    env,
    closed: false,
    timeoutMs: options.connectTimeoutMs || TUNNEL_CONNECT_TIMEOUT_MS,
    tokenDigest: crypto.createHash('sha256').update(token).digest(),
    trustContext: once(() => trustContext(env, options.platform || process.platform)),
    proxySettings: once(() => proxySettings(env)),
    track(socket) {
      if (tunnel.closed) {
        socket.destroy();
        return;
      }
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    },
  };
  const server = lazy.http.createServer({ requireHostHeader: false });
  server.on('connection', (socket) => {
    socket.on('error', () => socket.destroy());
    tunnel.track(socket);
  });
  server.on('connect', (request, client, head) => {
    try {
      handleConnect(tunnel, request, client, head);
    } catch (err) {
      const error = asTunnelError(err);
      refuse(client, error.status, error.message, error.permanent ? NO_RETRY : {});
    }
  });
  server.on('request', (request, response) => {
    request.on('error', ignore);
    response.on('error', ignore);
    request.resume();
    const body = `this is the task launcher's TLS tunnel: it accepts CONNECT only, not ${request.method}`;
    response.writeHead(405, {
      Allow: 'CONNECT',
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
      ...NO_RETRY,
    });
    response.end(body);
  });
  server.on('clientError', (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    refuse(socket, 400, `not an HTTP request the tunnel understands (${err.code || err.message})`, NO_RETRY);
  });
  const close = () => {
    if (tunnel.closed) return;
    tunnel.closed = true;
    server.close();
    for (const socket of sockets) socket.destroy();
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.removeListener('error', reject);
      server.on('error', ignore);
      server.unref();
      // warmUp(): reads the settings ahead of the first CONNECT (the trust store takes tens
      // of milliseconds); a bad setting is remembered and still fails that CONNECT.
      const warmUp = () => {
        try {
          tunnel.proxySettings();
          tunnel.trustContext();
        } catch {
          /* reported to the CONNECT that needs it */
        }
      };
      resolve({ address: `127.0.0.1:${server.address().port}`, token, close, warmUp });
    });
  });
}

/** The child's environment: the launcher's plus exactly the two tunnel variables. */
function childEnvironment(env, tunnel) {
  return { ...env, [TUNNEL_ENV]: tunnel.address, [TUNNEL_TOKEN_ENV]: tunnel.token };
}

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

/**
 * Runs the binary with this process's environment (plus the tunnel's two variables),
 * arguments and stdio; forwards SIGINT/SIGTERM (the agent signals on cancel) and ends the
 * way the child ended. The tunnel closes when the child is gone.
 */
function run(file, args, tunnel) {
  let child = null;
  // Listening before the spawn: the child may print and the agent cancel before the line
  // after spawn() runs, and without a listener that signal would kill us and orphan the
  // child. Node runs signal listeners from the event loop, so `child` is set by then.
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
  try {
    child = childProcess.spawn(file, args, {
      stdio: 'inherit',
      windowsHide: true,
      env: childEnvironment(process.env, tunnel),
    });
  } catch (err) {
    stopForwarding();
    throw err;
  }

  child.on('error', (err) => {
    stopForwarding();
    tunnel.close();
    fail(`cannot start ${file}: ${err.message}`);
  });
  child.on('exit', (code, signal) => {
    stopForwarding();
    tunnel.close();
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
  startTunnel(process.env).then(
    (tunnel) => {
      try {
        run(file, process.argv.slice(2), tunnel);
        // While the binary starts: it makes its first https request later.
        setImmediate(tunnel.warmUp);
      } catch (err) {
        tunnel.close();
        fail(`cannot start ${file}: ${err.message}`);
      }
    },
    (err) => fail(`cannot start the launcher's TLS tunnel on 127.0.0.1: ${err.message}`),
  );
}

if (require.main === module) {
  main();
} else {
  module.exports = {
    LauncherError,
    availablePlatforms,
    TUNNEL_ENV,
    TUNNEL_TOKEN_ENV,
    binaryFileName,
    childEnvironment,
    escapeMessage,
    expandBrotli,
    failureLines,
    locateBinary,
    makeExecutable,
    platformKey,
    parseTunnelTarget,
    prepare,
    isLoopbackHost,
    isPermanentTlsFailure,
    proxySettings,
    proxyTargetUrl,
    readConfig,
    shouldUseProxy,
    startTunnel,
    systemCertificates,
    trustContext,
    unixSystemCertificates,
  };
}
