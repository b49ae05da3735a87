// Conformance oracle: runs Clerk's official @clerk/backend on test cases.
//
// stdin:  JSON array of cases
//   {"id", "token", "jwtKey", "authorizedParties": [..]|null, "clockSkewInMs": int,
//    "has": [{permission?, role?, feature?, plan?, reverification?}, ...],
//    "treatPendingAsSignedOut": bool (default true), "audience": [..]|null, "issuer": [..]|null,
//    "machine": bool (a machine token: only authenticateRequest with acceptsToken 'any' runs),
//    "apiUrl", "secretKey" (machine cases: the Backend API opaque tokens are verified with; default: none needed)}
// stdout: JSON array of results, same order, each with "clock" (Unix seconds just before the case ran)
//   failure: {"id", "ok": false, "reason": <TokenVerificationErrorReason>, "message", "action", "request": {...}}
//   success: {"id", "ok": true, "payloadSub", "auth": {...}, "has": [bool, ...], "request": {...}}
//   "request" is authenticateRequest's outcome: {"status", "reason", "message" (requestState.message),
//   "messageHeader" (its x-clerk-auth-message header, which Clerk's SDKs copy onto the response, or null)}
//   (plus "authError" when Clerk itself throws while building the auth object)
//
// Every decision here is made by Clerk's code; this file only calls it and serialises the answers:
//   * verifyToken (the public '@clerk/backend' export) decides accept/reject and the reason string
//     (err.reason on the TokenVerificationError it throws).
//   * The auth object comes from the same path authenticateRequest takes for a request that carries the token
//     in `Authorization: Bearer`: authenticateRequest -> signedIn({sessionClaims}) -> requestState.toAuth(
//     {treatPendingAsSignedOut}) -> signedInAuthObject(...) (or signedOutAuthObject(..., 'pending')).
//     We run the real authenticateRequest (createClerkClient(...).authenticateRequest) with a networkless jwtKey.
//   * When verifyToken accepts a token but authenticateRequest signs the request out for a reason verifyToken
//     does not check (e.g. a non-session `cat` header -> token-type-mismatch), the auth object is built with
//     getAuthObjectFromJwt (exported from '@clerk/backend/internal'), which is Clerk's own
//     signedInAuthObject + "pending -> signed out" helper for an already verified JWT. The request-level outcome
//     is reported separately in "request".
//   * has() is the auth object's own has() (Clerk's createCheckAuthorization).
import { createClerkClient, verifyToken } from '@clerk/backend';
import { getAuthObjectFromJwt } from '@clerk/backend/internal';
import { decodeJwt } from '@clerk/backend/jwt';

process.env.CLERK_TELEMETRY_DISABLED = '1';

// Dummy keys: authenticateRequest asserts a secret key and a well-formed publishable key exist. They are never
// used on the network here: the token is in the Authorization header and jwtKey makes verification networkless.
const FRONTEND_API = 'clerk.conformance.example.com';
const PUBLISHABLE_KEY = 'pk_test_' + Buffer.from(`${FRONTEND_API}$`).toString('base64');
const SECRET_KEY = 'sk_test_conformance000000000000000000000000';

const AUTH_FIELDS = [
  'userId',
  'sessionId',
  'sessionStatus',
  'orgId',
  'orgRole',
  'orgSlug',
  'orgPermissions',
  'factorVerificationAge',
  'actor',
];

// JSON has no `undefined`; Clerk leaves several fields undefined (e.g. orgId on a v2 token without `o`).
// Python has only None, so undefined is reported as null.
const orNull = (v) => (v === undefined ? null : v);

// The message of a request state and the x-clerk-auth-message header Clerk's withDebugHeaders set from it (absent
// when Headers refused the value).
function messageOf(requestState) {
  return { message: orNull(requestState.message), messageHeader: requestState.headers.get('x-clerk-auth-message') };
}

function serialiseAuth(authObject) {
  const out = {};
  for (const k of AUTH_FIELDS) out[k] = orNull(authObject[k]);
  out.isAuthenticated = authObject.isAuthenticated;
  return out;
}

function runHas(authObject, queries) {
  return (queries || []).map((q) => {
    try {
      return authObject.has(q);
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
}

async function runCase(c, clerkClient) {
  const verifyOptions = {
    jwtKey: c.jwtKey,
    authorizedParties: c.authorizedParties ?? undefined,
    clockSkewInMs: c.clockSkewInMs,
    audience: c.audience ?? undefined,
    issuer: c.issuer ?? undefined,
  };
  if (c.machine) return runMachineCase(c, clerkClient, verifyOptions);
  const treatPendingAsSignedOut = c.treatPendingAsSignedOut ?? true;

  // 1. The request path (informational + source of the auth object when signed in).
  let requestState = null;
  const request = {};
  try {
    requestState = await clerkClient.authenticateRequest(
      new Request('http://localhost:5000/api/conformance', {
        headers: { Authorization: `Bearer ${c.token}` },
      }),
      verifyOptions,
    );
    request.status = requestState.status;
    request.reason = orNull(requestState.reason);
    Object.assign(request, messageOf(requestState));
  } catch (e) {
    request.status = 'error';
    request.reason = String(e && e.message ? e.message : e);
  }

  // 2. verifyToken decides accept/reject.
  let payload;
  try {
    payload = await verifyToken(c.token, verifyOptions);
  } catch (err) {
    // TokenVerificationError carries the reason string in `.reason` (see dist/errors.mjs).
    if (!err || err.reason === undefined) return { id: c.id, ok: false, reason: `non-clerk-error: ${err}`, request };
    return { id: c.id, ok: false, reason: err.reason, message: orNull(err.message), action: orNull(err.action), request };
  }

  const result = { id: c.id, ok: true, payloadSub: orNull(payload.sub), request };
  let authObject;
  try {
    if (requestState && requestState.status === 'signed-in') {
      authObject = requestState.toAuth({ treatPendingAsSignedOut });
      result.authSource = 'authenticateRequest.toAuth';
    } else {
      authObject = getAuthObjectFromJwt(decodeJwt(c.token), {
        treatPendingAsSignedOut,
        secretKey: SECRET_KEY,
        jwtKey: c.jwtKey,
      });
      result.authSource = 'getAuthObjectFromJwt';
    }
  } catch (e) {
    // Clerk itself throws while decoding the claims (e.g. a `fea` element without a colon on a v2 org token).
    result.authError = String(e && e.message ? e.message : e);
    result.auth = null;
    result.has = (c.has || []).map(() => null);
    return result;
  }
  result.auth = serialiseAuth(authObject);
  result.has = runHas(authObject, c.has);
  if (result.authSource !== 'getAuthObjectFromJwt') {
    // Self-check of this harness: both Clerk entry points must agree on the same verified token.
    const viaJwt = getAuthObjectFromJwt(decodeJwt(c.token), { treatPendingAsSignedOut, secretKey: SECRET_KEY });
    const a = JSON.stringify([serialiseAuth(viaJwt), runHas(viaJwt, c.has)]);
    const b = JSON.stringify([result.auth, result.has]);
    if (a !== b) result.harnessWarning = `authenticateRequest and getAuthObjectFromJwt disagree: ${a} vs ${b}`;
  }
  return result;
}

// A machine token through authenticateRequest (Clerk's own routing: verifyMachineAuthToken for JWT forms, which
// is networkless with jwtKey; opaque tokens go to the case's apiUrl, the test kit's Backend API stand-in).
// Reports the request outcome and the machine auth's token type and subject.
async function runMachineCase(c, defaultClient, verifyOptions) {
  const clerkClient = c.apiUrl
    ? createClerkClient({ secretKey: c.secretKey, publishableKey: PUBLISHABLE_KEY, apiUrl: c.apiUrl, telemetry: { disabled: true } })
    : defaultClient;
  const requestState = await clerkClient.authenticateRequest(
    new Request('http://localhost:5000/api/conformance', { headers: { Authorization: `Bearer ${c.token}` } }),
    { ...verifyOptions, acceptsToken: 'any' },
  );
  const request = {
    status: requestState.status,
    reason: orNull(requestState.reason),
    tokenType: orNull(requestState.tokenType),
    ...messageOf(requestState),
  };
  if (requestState.status === 'signed-in') request.subject = orNull(requestState.toAuth().subject);
  return { id: c.id, ok: requestState.status === 'signed-in', request };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const clerkClient = createClerkClient({
    secretKey: SECRET_KEY,
    publishableKey: PUBLISHABLE_KEY,
    telemetry: { disabled: true },
  });
  const results = [];
  for (const c of cases) {
    const clock = Date.now() / 1000; // what "Current date" in Clerk's messages for this case reads
    try {
      results.push({ ...(await runCase(c, clerkClient)), clock });
    } catch (e) {
      results.push({ id: c.id, harnessError: String(e && e.stack ? e.stack : e) });
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
