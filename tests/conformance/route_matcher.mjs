// Conformance oracle for public routes: answers with Clerk's own createPathMatcher (@clerk/shared, as shipped
// with the pinned @clerk/backend) and the WHATWG URL parser Clerk reads request paths with.
//
// stdin:  JSON {"pairs": [[pattern, pathname], ...], "urls": [requestTarget, ...]}
// stdout: JSON {"pairs": ["match"|"no-match"|"invalid-pattern"|"malformed-path", ...],
//               "urls": [new URL("http://127.0.0.1" + target).pathname, ...]}
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// Resolve @clerk/shared from @clerk/backend's own location: the copy the pinned backend really uses.
const backendRequire = createRequire(createRequire(import.meta.url).resolve('@clerk/backend'));
const { createPathMatcher, isMalformedURLError } = backendRequire('@clerk/shared/pathMatcher');

function decide(pattern, pathname) {
  let matcher;
  try {
    matcher = createPathMatcher(pattern);
  } catch {
    return 'invalid-pattern';
  }
  try {
    return matcher(pathname) ? 'match' : 'no-match';
  } catch (e) {
    if (isMalformedURLError(e)) return 'malformed-path';
    throw e;
  }
}

const input = JSON.parse(readFileSync(0, 'utf8'));
const out = {
  pairs: (input.pairs || []).map(([pattern, pathname]) => decide(pattern, pathname)),
  urls: (input.urls || []).map((target) => new URL('http://127.0.0.1' + target).pathname),
};
process.stdout.write(JSON.stringify(out));
