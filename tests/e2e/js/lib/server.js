// Starts a real tlog server for the end-to-end tests: a fresh database in the
// throwaway cluster named by DATABASE_URL, a fresh signing key from `tlog keygen`,
// `tlog migrate`, then `tlog serve` on a free loopback port.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..', '..');

export function tlogBinary() {
  const bin = process.env.TLOG_BIN || path.join(repoRoot, 'target', 'debug', 'tlog');
  if (!fs.existsSync(bin)) {
    throw new Error(`tlog binary not found at ${bin}: run 'cargo build' first or set TLOG_BIN`);
  }
  return bin;
}

function adminUrl() {
  const url = process.env.DATABASE_URL;
  if (!url) {
    throw new Error('DATABASE_URL is not set: run the e2e tests through scripts/test.sh');
  }
  return url;
}

function psqlBinary() {
  const bindir = process.env.PG_BINDIR;
  if (bindir && fs.existsSync(path.join(bindir, 'psql'))) return path.join(bindir, 'psql');
  return 'psql';
}

function psql(sql) {
  const res = spawnSync(psqlBinary(), ['-X', '-v', 'ON_ERROR_STOP=1', '-qAt', '-d', adminUrl(), '-c', sql], {
    encoding: 'utf8',
  });
  if (res.error) throw res.error;
  if (res.status !== 0) {
    throw new Error(`psql failed (${res.status}) for ${sql}: ${res.stderr}`);
  }
  return res.stdout;
}

// Same cluster and credentials as DATABASE_URL, another database.
function databaseUrl(name) {
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function run(bin, args, env, logFile) {
  const res = spawnSync(bin, args, { env, encoding: 'utf8' });
  fs.appendFileSync(logFile, `$ tlog ${args.join(' ')}\n${res.stdout}${res.stderr}\n`);
  if (res.error) throw res.error;
  if (res.status !== 0) {
    throw new Error(`tlog ${args.join(' ')} exited with ${res.status}:\n${res.stdout}${res.stderr}`);
  }
  return res;
}

async function waitUntilServing(baseUrl, child, logFile, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `tlog serve exited early (${child.exitCode ?? child.signalCode}):\n${fs.readFileSync(logFile, 'utf8')}`
      );
    }
    try {
      const res = await fetch(`${baseUrl}/api/v1/log`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) {
        await res.arrayBuffer();
        return;
      }
      lastError = new Error(`GET /api/v1/log answered ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `tlog serve did not answer GET /api/v1/log within ${timeoutMs} ms (${lastError}):\n${fs.readFileSync(logFile, 'utf8')}`
  );
}

/**
 * Starts a server. Returns { baseUrl, port, hostname, stop(), logFile, trustConfig }.
 * The database and the key are the server's own; stop() removes both.
 * With `v2`, the server also runs a Rekor v2 log: a fresh Ed25519 key file from
 * `tlog keygen --algorithm ed25519` (a file even under E2E_SIGNER=pkcs11, where only
 * the v1 key is on the token) and the origin `<hostname>:<port>`, a substring of the
 * base URL as sigstore-js's checkpoint check needs; `trustConfig` is then the parsed
 * `tlog trust-config` output for both logs.
 */
export async function startServer({ hostname = 'localhost', v2 = false } = {}) {
  const bin = tlogBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlog-e2e-'));
  const logFile = path.join(dir, 'server.log');
  const dbName = `tlog_e2e_${crypto.randomBytes(6).toString('hex')}`;
  psql(`CREATE DATABASE ${dbName}`);

  const port = await freePort();
  const keyFile = path.join(dir, 'log-key.pem');
  // The server reads every TLOG_* variable as configuration (and rejects unknown keys),
  // so pass only ours: not TLOG_BIN or anything else of the test harness.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TLOG_')));
  Object.assign(env, {
    TLOG_LISTEN: `127.0.0.1:${port}`,
    TLOG_METRICS_LISTEN: "127.0.0.1:0",
    TLOG_DATABASE_URL: databaseUrl(dbName),
    TLOG_KEY_FILE: keyFile,
    TLOG_HOSTNAME: hostname,
    RUST_LOG: process.env.RUST_LOG || 'info',
  });
  delete env.DATABASE_URL; // the server must take its database from TLOG_DATABASE_URL alone
  // E2E_SIGNER=pkcs11 (scripts/test.sh's second run): the log key is made on the
  // SoftHSM2 token E2E_PKCS11_TOKEN by `tlog keygen --pkcs11` and never leaves it.
  const pkcs11 = process.env.E2E_SIGNER === 'pkcs11';
  if (pkcs11) {
    Object.assign(env, {
      TLOG_SIGNER__KIND: 'pkcs11',
      TLOG_SIGNER__PKCS11__MODULE: process.env.E2E_PKCS11_MODULE,
      TLOG_SIGNER__PKCS11__TOKEN_LABEL: process.env.E2E_PKCS11_TOKEN,
      TLOG_SIGNER__PKCS11__PIN_FILE: process.env.E2E_PKCS11_PIN_FILE,
      TLOG_SIGNER__PKCS11__KEY_LABEL: `log-${dbName}`,
    });
  }

  let child;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    try {
      psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } catch (err) {
      console.error(`could not drop ${dbName}: ${err.message}`);
    }
    // Keep the server's log where a failed run can be read afterwards (target/ is ignored).
    try {
      const keep = path.join(repoRoot, 'target', 'e2e-logs');
      fs.mkdirSync(keep, { recursive: true });
      fs.copyFileSync(logFile, path.join(keep, `${dbName}.log`));
    } catch {
      // best effort
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    if (pkcs11) {
      run(bin, ['keygen', '--pkcs11'], env, logFile);
    } else {
      run(bin, ['keygen', '--out', keyFile], env, logFile);
      const mode = fs.statSync(keyFile).mode & 0o777;
      if (mode !== 0o600) throw new Error(`tlog keygen wrote ${keyFile} with mode ${mode.toString(8)}, want 600`);
    }
    const baseUrl = `http://${hostname}:${port}`;
    let trustConfig;
    if (v2) {
      const v2Key = path.join(dir, 'v2-key.pem');
      run(bin, ['keygen', '--algorithm', 'ed25519', '--out', v2Key], env, logFile);
      Object.assign(env, { TLOG_V2__KEY_FILE: v2Key, TLOG_V2__ORIGIN: `${hostname}:${port}` });
      const res = run(bin, ['trust-config', '--v1-url', baseUrl, '--v2-url', baseUrl], env, logFile);
      trustConfig = JSON.parse(res.stdout);
    }
    run(bin, ['migrate'], env, logFile);

    const out = fs.openSync(logFile, 'a');
    child = spawn(bin, ['serve'], { env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    // Never leave a server behind, even if the test process dies or is interrupted.
    process.once('exit', () => child.kill('SIGKILL'));
    for (const sig of ['SIGINT', 'SIGTERM']) {
      process.once(sig, () => {
        child.kill('SIGKILL');
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
      });
    }

    await waitUntilServing(baseUrl, child, logFile, 60000);
    return { baseUrl, port, hostname, keyFile, logFile, trustConfig, stop, serverLog: () => fs.readFileSync(logFile, 'utf8') };
  } catch (err) {
    await stop();
    throw err;
  }
}
