// A small JSON Schema validator for the subset docs/openapi.json uses: type, properties,
// required, additionalProperties, enum, minimum/maximum, minLength/maxLength, pattern, items and
// $ref to "#/components/schemas/NAME". The API server checks request bodies with it (so the
// document and the server cannot disagree about what is accepted), `tsvm run --config` checks
// config files with it, and the tests check responses with it.
//
// Errors name the field the way a user wrote it: `drives[0].is_read_only must be a boolean`.

export type JsonSchema = {
  $ref?: string;
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: JsonSchema;
  description?: string;
  [other: string]: unknown;
};

export class SchemaError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

const ARTICLE: Record<string, string> = {
  object: 'an object', array: 'an array', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'a boolean',
};

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export class SchemaValidator {
  constructor(private readonly schemas: Record<string, JsonSchema>) {}

  schema(name: string): JsonSchema {
    const s = this.schemas[name];
    if (!s) throw new Error(`no schema named ${name}`);
    return s;
  }

  private resolve(s: JsonSchema): JsonSchema {
    let cur = s;
    for (let i = 0; cur.$ref && i < 16; i++) {
      const m = /^#\/components\/schemas\/(.+)$/.exec(cur.$ref);
      if (!m) throw new Error(`unsupported $ref ${cur.$ref}`);
      cur = this.schema(m[1]);
    }
    return cur;
  }

  /** Throws a SchemaError naming the first field that does not fit. `path` prefixes field names. */
  validate(value: unknown, schema: JsonSchema | string, path = ''): void {
    const s = this.resolve(typeof schema === 'string' ? { $ref: `#/components/schemas/${schema}` } : schema);
    const where = path || 'the body';
    const fail = (msg: string): never => {
      throw new SchemaError(path, `${where} ${msg}`);
    };
    if (s.type) {
      const ok =
        s.type === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value)
        : s.type === 'array' ? Array.isArray(value)
        : s.type === 'integer' ? typeof value === 'number' && Number.isInteger(value)
        : s.type === 'number' ? typeof value === 'number' && Number.isFinite(value)
        : typeof value === s.type;
      if (!ok) fail(`must be ${ARTICLE[s.type]}, not ${describe(value)}`);
    }
    if (s.enum && !s.enum.some((e) => e === value)) {
      fail(`must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}, not ${describe(value)}`);
    }
    if (typeof value === 'number') {
      if (s.minimum !== undefined && value < s.minimum) fail(`must be at least ${s.minimum}, not ${value}`);
      if (s.maximum !== undefined && value > s.maximum) fail(`must be at most ${s.maximum}, not ${value}`);
    }
    if (typeof value === 'string') {
      if (s.minLength !== undefined && value.length < s.minLength) fail(s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters long`);
      if (s.maxLength !== undefined && value.length > s.maxLength) fail(`must be at most ${s.maxLength} characters long`);
      if (s.pattern !== undefined && !new RegExp(s.pattern).test(value)) fail(`${describe(value)} does not have the expected form${s.description ? ` (${s.description})` : ''}`);
    }
    if (Array.isArray(value) && s.items) {
      value.forEach((item, i) => this.validate(item, s.items!, `${path || 'the body'}[${i}]`));
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const obj = value as Record<string, unknown>;
      const props = s.properties ?? {};
      for (const r of s.required ?? []) {
        if (obj[r] === undefined) throw new SchemaError(join(path, r), `missing field ${join(path, r)}${path ? '' : ''} (required)`);
      }
      for (const [k, v] of Object.entries(obj)) {
        const ps = props[k];
        if (ps) {
          this.validate(v, ps, join(path, k));
        } else if (s.additionalProperties === false) {
          const known = Object.keys(props);
          throw new SchemaError(join(path, k), `unknown field ${join(path, k)}${known.length ? ` (known fields${path ? ` of ${path}` : ''}: ${known.join(', ')})` : ''}`);
        } else if (typeof s.additionalProperties === 'object') {
          this.validate(v, s.additionalProperties, join(path, k));
        }
      }
    }
  }
}
