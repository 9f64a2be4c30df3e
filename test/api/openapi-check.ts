// Checks the server's answers against docs/openapi.json: the path and method are documented, the
// status is one the operation lists (404 and 405 are documented globally), and the body fits the
// response's schema (no body where the response has no content).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SchemaValidator, type JsonSchema } from '../../src/api/json-schema.js';
import { repoRoot } from '../support/guests.js';

interface Operation {
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
}

export const openApi = JSON.parse(readFileSync(join(repoRoot(), 'docs', 'openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, JsonSchema> };
};
const validator = new SchemaValidator(openApi.components.schemas);

function template(path: string): string | undefined {
  const clean = path.split('?')[0];
  return Object.keys(openApi.paths).find((t) => new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(clean));
}

export function checkResponse(method: string, path: string, status: number, body: unknown): void {
  const where = `${method} ${path} -> ${status}`;
  const t = template(path);
  if (!t) {
    assert.equal(status, 404, `${where}: an undocumented path must answer 404`);
    validator.validate(body, 'Error');
    return;
  }
  const op = openApi.paths[t][method.toLowerCase()];
  if (!op) {
    assert.equal(status, 405, `${where}: an undocumented method must answer 405`);
    validator.validate(body, 'Error');
    return;
  }
  const resp = op.responses[String(status)] ?? (status >= 400 ? op.responses.default : undefined);
  assert.ok(resp, `${where}: status ${status} is not documented for ${method} ${t}`);
  const schema = resp.content?.['application/json']?.schema;
  if (!schema) {
    assert.equal(body, undefined, `${where}: documented without a body`);
    return;
  }
  try {
    validator.validate(body, schema);
  } catch (e) {
    assert.fail(`${where}: the body does not fit the document: ${(e as Error).message}\n${JSON.stringify(body)}`);
  }
}
