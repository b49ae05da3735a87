// Oracle for JavaScript's own writing of values (flask_clerk_security/jsvalues.py ports it for Clerk's messages).
//
// stdin:  JSON {"texts": [<JSON text>, ...], "dates": [<ms since the epoch>, ...]}
// stdout: JSON {"texts": [[JSON.stringify(v), String(v)], ...] for v = JSON.parse(text),
//               "dates": [new Date(ms).toUTCString(), ...]}  (ms null: NaN)
import { readFileSync } from 'node:fs';

const input = JSON.parse(readFileSync(0, 'utf8'));
const texts = input.texts.map((text) => {
  const value = JSON.parse(text);
  return [JSON.stringify(value), String(value)];
});
const dates = input.dates.map((ms) => new Date(ms ?? NaN).toUTCString()); // null: NaN (JSON has none)
process.stdout.write(JSON.stringify({ texts, dates }));
