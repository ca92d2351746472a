/**
 * The OpenAPI 3.1 document, generated from the routes' own JSON schemas (so it cannot drift from
 * what the server checks), and a plain readable page of it. OpenAPI 3.1 schemas are JSON Schema
 * 2020-12, so the route schemas go in as they are.
 */

import type { FastifyInstance, RouteOptions } from 'fastify';

interface RouteSchema {
  readonly hide?: boolean;
  readonly summary?: string;
  readonly description?: string;
  readonly tags?: readonly string[];
  readonly params?: { properties?: Record<string, object>; required?: readonly string[] };
  readonly querystring?: { properties?: Record<string, object>; required?: readonly string[] };
  readonly body?: object;
  readonly response?: Record<string, object>;
}

type OpenApiDoc = {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, object>>;
  components: { securitySchemes: Record<string, object> };
};

const STATUS_TEXT: Record<string, string> = { '200': 'OK', '201': 'Created', '202': 'Accepted', '204': 'No content', '400': 'Invalid request', '401': 'Not logged in', '403': 'Forbidden', '404': 'Not found', '409': 'Conflict', '422': 'Cannot be done as asked', '429': 'Refused for now' };

/** Collects every route added after this call; the returned function builds the document. */
export function collectOpenApi(app: FastifyInstance, info: { title: string; version: string }): () => OpenApiDoc {
  const routes: { method: string; url: string; schema: RouteSchema; websocket: boolean }[] = [];
  app.addHook('onRoute', (route: RouteOptions & { websocket?: boolean }) => {
    const schema = (route.schema ?? {}) as RouteSchema;
    if (schema.hide || route.method === 'HEAD') return;
    for (const method of [route.method].flat()) routes.push({ method: String(method).toLowerCase(), url: route.url, schema, websocket: route.websocket === true });
  });
  let doc: OpenApiDoc | undefined;
  return () => {
    if (doc) return doc;
    const paths: OpenApiDoc['paths'] = {};
    for (const r of routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const parameters = [
        ...Object.entries(r.schema.params?.properties ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
        ...Object.entries(r.schema.querystring?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: r.schema.querystring?.required?.includes(name) ?? false, schema })),
      ];
      const responses: Record<string, object> = {};
      for (const [status, schema] of Object.entries(r.schema.response ?? { 200: {} })) {
        responses[status] = { description: STATUS_TEXT[status] ?? 'Response', ...(status === '204' ? {} : { content: { 'application/json': { schema } } }) };
      }
      if (r.websocket) responses['101'] = { description: 'Switching to a WebSocket: one JSON message per event, { id, at, type, callId, paymentId, data }' };
      paths[path] ??= {};
      paths[path][r.method] = {
        ...(r.schema.summary ? { summary: r.schema.summary } : {}),
        ...(r.schema.description ? { description: r.schema.description } : {}),
        ...(r.schema.tags ? { tags: r.schema.tags } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(r.schema.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.schema.body } } } } : {}),
        responses,
        ...(r.url.startsWith('/v1/auth/login') || r.url === '/healthz' || r.url === '/v1/page-config' ? { security: [] } : {}),
      };
    }
    doc = {
      openapi: '3.1.0',
      info: {
        ...info,
        description:
          'Agent-assisted card payments on live calls, shaped after Twilio’s Payments resource. Card data never appears here: progress is counts, brand and the last four. Errors are { "error": { "code", "message" } }.',
      },
      paths,
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: 'hp_session', description: 'After POST /v1/auth/login; changes also need the X-CSRF-Token header' },
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key, hpk_…' },
        },
      },
    };
    return doc;
  };
}

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The document as a page a person can read (no script: the agent page's CSP holds here too). */
export function docsPage(doc: OpenApiDoc): string {
  const ops: string[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods) as [string, { summary?: string; description?: string; parameters?: { name: string; in: string }[]; requestBody?: { content: { 'application/json': { schema: { properties?: Record<string, { type?: unknown; description?: string; enum?: unknown[] }>; required?: string[] } } } }; responses: Record<string, { description: string }> }][]) {
      const body = op.requestBody?.content['application/json'].schema;
      const fields = Object.entries(body?.properties ?? {})
        .map(([name, s]) => `<li><code>${escape(name)}</code>${body?.required?.includes(name) ? ' (required)' : ''} ${escape(String(s.type ?? (s.enum ? s.enum.join(' | ') : '')))}${s.description ? ` — ${escape(s.description)}` : ''}</li>`)
        .join('');
      ops.push(
        `<section><h2><span class="m">${method.toUpperCase()}</span> <code>${escape(path)}</code></h2><p>${escape(op.summary ?? '')}</p>${op.description ? `<p>${escape(op.description)}</p>` : ''}` +
          `${op.parameters?.length ? `<p>Parameters: ${op.parameters.map((p) => `<code>${escape(p.name)}</code> (${p.in})`).join(', ')}</p>` : ''}${fields ? `<p>Body:</p><ul>${fields}</ul>` : ''}` +
          `<p>Answers: ${Object.entries(op.responses).map(([s, r]) => `${s} ${escape(r.description)}`).join('; ')}</p></section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(doc.info.title)}</title><link rel="stylesheet" href="/app.css"></head><body class="docs"><main><h1>${escape(doc.info.title)}</h1><p>${escape(doc.info.description)}</p><p>The document: <a href="/docs/openapi.json">/docs/openapi.json</a> (OpenAPI 3.1).</p>${ops.join('')}</main></body></html>`;
}
