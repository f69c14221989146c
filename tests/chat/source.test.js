'use strict';
// Properties of the server source itself that the deployment relies on.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { SERVER } = require('./helpers');

const src = fs.readFileSync(SERVER, 'utf8');

test('server.js contains no template markup (it is embedded through a template)', () => {
  for (const tag of ['{{', '{%', '{#']) {
    assert.ok(!src.includes(tag), `server.js must not contain ${JSON.stringify(tag)}`);
  }
});

test('server.js only requires Node.js built-in modules', () => {
  const required = [...src.matchAll(/require\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]);
  assert.ok(required.length > 0);
  for (const name of required) assert.match(name, /^node:/, `${name} is not a node: built-in`);
  assert.ok(!/\bimport\s/.test(src), 'CommonJS only');
});
