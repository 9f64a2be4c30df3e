// docs/openapi.json is the API's one definition: the server validates request bodies against its
// schemas, `tsvm run --config` validates config files against FullVmConfiguration, and the tests
// check the server's answers against it. It is read once, on first use.
import { readFileSync } from 'node:fs';
import { SchemaValidator, type JsonSchema } from './json-schema.js';
import { distSrcUrl } from '../paths.js';

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, {
    requestBody?: { content: Record<string, { schema: JsonSchema }> };
    responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
  }>>;
  components: { schemas: Record<string, JsonSchema> };
}

/** Where the document lives: docs/openapi.json in the package. */
export const OPENAPI_URL = distSrcUrl('../../docs/openapi.json');

let doc: OpenApiDocument | undefined;
let validator: SchemaValidator | undefined;

export function openApiDocument(): OpenApiDocument {
  doc ??= JSON.parse(readFileSync(OPENAPI_URL, 'utf8')) as OpenApiDocument;
  return doc;
}

export function apiSchemas(): SchemaValidator {
  validator ??= new SchemaValidator(openApiDocument().components.schemas);
  return validator;
}
