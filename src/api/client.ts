// A minimal client for a VM's API socket (the CLI's ps/stop/pause/resume use it; so can scripts).
import { request } from 'node:http';

export interface ApiResponse {
  status: number;
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown;
  text: string;
}

export class ApiUnreachableError extends Error {}

/** One request over a Unix socket; rejects with ApiUnreachableError when nobody answers in time. */
export function apiRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = { Accept: 'application/json' };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
      res.on('error', (e) => reject(new ApiUnreachableError(e.message)));
    });
    const timer = setTimeout(() => req.destroy(new ApiUnreachableError(`no answer on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e instanceof ApiUnreachableError ? e : new ApiUnreachableError(`${socketPath}: ${e.message}`));
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The fault message of an error response, or a description of the status. */
export function faultMessage(r: ApiResponse): string {
  const b = r.body as { fault_message?: unknown } | undefined;
  return typeof b?.fault_message === 'string' ? b.fault_message : `HTTP ${r.status}${r.text ? `: ${r.text}` : ''}`;
}
