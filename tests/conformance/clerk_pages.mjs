// Conformance oracle for page requests: runs Clerk's official authenticateRequest (@clerk/backend, pinned in
// package.json) on requests that carry cookies, handshake returns and navigation headers.
//
// stdin:  JSON array of cases
//   {"id", "method", "url", "headers": {..}, "cookies": {..},
//    "publishableKey", "secretKey", "jwtKey", "apiUrl", "proxyUrl"?,
//    "options"?: {..more authenticateRequest options: isSatellite, domain, signInUrl, organizationSyncOptions..},
//    "toAuth"?: {treatPendingAsSignedOut}, "protect"?: true}
// stdout: JSON array, same order
//   {"id", "status": "signed-in"|"signed-out"|"handshake"|"error", "reason", "userId", "sessionStatus",
//    "message": <requestState.message>, "messageHeader": <its x-clerk-auth-message header, or null>,
//    "location": <Location header or null>, "setCookies": [<Set-Cookie directives>],
//    "signInRedirect": <where redirectToSignIn sends a protected page's signed-out visitor, or null>, "error"?,
//    "clock": <Unix seconds just before the case ran>}
//
// Every decision is Clerk's: createClerkClient(...).authenticateRequest(new Request(...), options). The handshake
// nonce exchange and the session refresh go to `apiUrl` (the test kit's Backend API stand-in on 127.0.0.1)
// through Clerk's own client. A protected page's sign-in redirect is Clerk's createRedirect, as its SDKs call it
// (with the auth's sessionStatus: a pending session goes to the sign-in page's /tasks).
import { createClerkClient } from '@clerk/backend';
import { createRedirect } from '@clerk/backend/internal';

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
  Object.assign(options, c.options || {});
  // Clerk logs to the console on handshake loops and failures; keep stdout for the JSON answer.
  const log = console.log;
  const error = console.error;
  console.log = console.error = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
  try {
    const state = await clerkClient.authenticateRequest(request, options);
    const auth = state.status === 'signed-in' ? state.toAuth(c.toAuth || undefined) : null;
    let signInRedirect = null;
    if (c.protect && state.status !== 'handshake' && !(auth && auth.userId)) {
      signInRedirect = createRedirect({
        publishableKey: c.publishableKey,
        signInUrl: (c.options || {}).signInUrl,
        baseUrl: c.url,
        sessionStatus: auth ? auth.sessionStatus : null,
        isSatellite: (c.options || {}).isSatellite,
        devBrowserToken: new URL(c.url).searchParams.get('__clerk_db_jwt') || (c.cookies || {}).__clerk_db_jwt,
        redirectAdapter: (url) => url,
      }).redirectToSignIn({ returnBackUrl: c.url });
    }
    return {
      id: c.id,
      status: state.status,
      reason: state.reason ?? null,
      userId: auth && auth.userId ? auth.userId : null,
      sessionStatus: auth ? auth.sessionStatus ?? null : null,
      message: state.message ?? null,
      messageHeader: state.headers.get('x-clerk-auth-message'),
      location: state.headers.get('location'),
      setCookies: state.headers.getSetCookie(),
      signInRedirect,
    };
  } catch (e) {
    return { id: c.id, status: 'error', reason: null, userId: null, message: null, messageHeader: null, location: null,
      setCookies: [], error: String(e && e.message ? e.message : e) };
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
  for (const c of cases) {
    const clock = Date.now() / 1000; // what "Current date" in Clerk's messages for this case reads
    results.push({ ...(await runCase(c)), clock });
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
