// Conformance oracle for page requests: runs Clerk's official authenticateRequest (@clerk/backend, pinned in
// package.json) on requests that carry cookies, handshake returns and navigation headers.
//
// stdin:  JSON array of cases
//   {"id", "method", "url", "headers": {..}, "cookies": {..},
//    "publishableKey", "secretKey", "jwtKey", "apiUrl", "proxyUrl"?}
// stdout: JSON array, same order
//   {"id", "status": "signed-in"|"signed-out"|"handshake"|"error", "reason", "userId",
//    "location": <Location header or null>, "setCookies": [<Set-Cookie directives>], "error"?}
//
// Every decision is Clerk's: createClerkClient(...).authenticateRequest(new Request(...), options). The handshake
// nonce exchange goes to `apiUrl` (the test kit's Backend API stand-in on 127.0.0.1) through Clerk's own client.
import { createClerkClient } from '@clerk/backend';

process.env.CLERK_TELEMETRY_DISABLED = '1';

async function runCase(c) {
  const clerkClient = createClerkClient({
    secretKey: c.secretKey,
    publishableKey: c.publishableKey,
    apiUrl: c.apiUrl,
    telemetry: { disabled: true },
  });
  const headers = new Headers(c.headers || {});
  const cookie = Object.entries(c.cookies || {})
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
  if (cookie) headers.set('cookie', cookie);
  const request = new Request(c.url, { method: c.method || 'GET', headers });
  const options = { jwtKey: c.jwtKey, secretKey: c.secretKey, publishableKey: c.publishableKey };
  if (c.proxyUrl) options.proxyUrl = c.proxyUrl;
  // Clerk logs to the console on handshake loops and failures; keep stdout for the JSON answer.
  const log = console.log;
  const error = console.error;
  console.log = console.error = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
  try {
    const state = await clerkClient.authenticateRequest(request, options);
    const auth = state.status === 'signed-in' ? state.toAuth() : null;
    return {
      id: c.id,
      status: state.status,
      reason: state.reason ?? null,
      userId: auth && auth.userId ? auth.userId : null,
      location: state.headers.get('location'),
      setCookies: state.headers.getSetCookie(),
    };
  } catch (e) {
    return { id: c.id, status: 'error', reason: null, userId: null, location: null, setCookies: [],
      error: String(e && e.message ? e.message : e) };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = [];
  for (const c of cases) results.push(await runCase(c));
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
