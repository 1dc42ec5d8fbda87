import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  adaptiveThrottle,
  bulkhead,
  circuitBreaker,
  constant,
  EVENT_TYPES,
  fallback,
  type Operation,
  pipeline,
  rateLimit,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, track } from '../helpers/deferred.js';

/**
 * The dashboard in docs/grafana is checked against what the real adapter exposes: every metric name in every PromQL
 * expression (panels, template variables, annotations) must be one the prom-client registry shows after some
 * traffic, every label a query matches on or groups by must be a label of those metrics, and every value it matches
 * `event`, `result`, `state` or `reason` against must be one bulwark records.
 */

/** Grafana's reference to the datasource variable (a plain string, not a template). */
const DATASOURCE_VAR = ['$', '{datasource}'].join('');
const DASHBOARD = new URL('../../docs/grafana/bulwark-dashboard.json', import.meta.url);

interface Panel {
  type: string;
  title?: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
  gridPos: { x: number; y: number; w: number; h: number };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
  annotations: { list: { expr?: string }[] };
};

/** Runs traffic that makes every metric and every label appear, then reads the registry. */
async function exposed(): Promise<Map<string, Set<string>>> {
  const registry = new Registry();
  const clock = new FakeClock();
  const metrics = prometheusMetrics({ registry });
  const bh = bulkhead({ name: 'bh', limit: 1, queue: 0, clock });
  const breaker = circuitBreaker({
    name: 'breaker',
    window: { kind: 'consecutive', threshold: 2 },
    halfOpenAfterMs: 1_000,
    clock,
  });
  const p = pipeline(
    fallback({ name: 'fb', value: 'cached' }),
    retry({ name: 'retry', maxAttempts: 2, backoff: constant(10), clock }),
    breaker,
    timeout({ name: 'to', ms: 100, clock }),
    bh,
  );
  metrics.attach(p);
  // The overload toolkit's gauges: a rate limiter, both kinds of retry budget (found through their retry policies)
  // and an adaptive throttle.
  metrics.attach(
    rateLimit({ name: 'rl', rate: 10, clock }),
    retry({ name: 'budgeted', budget: retryBudget({ name: 'budget' }), clock }),
    retry({ name: 'token-budgeted', budget: retryTokenBudget({ name: 'tokens' }), clock }),
    adaptiveThrottle({ name: 'throttle', clock }),
  );
  const reset: Operation<string> = () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
  // A timeout whose work honours the abort (late outcome), then a failure: the breaker opens, the retry gives up,
  // the fallback replaces it.
  let first = true;
  const t1 = track(
    p.execute(
      (ctx) => {
        if (!first) return reset(ctx);
        first = false;
        return new Promise<string>((_r, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
        );
      },
      { operation: 'op' },
    ),
  );
  await clock.runAll();
  expect(t1.value).toBe('cached');
  // Rejected by the open breaker.
  expect(await p.execute(() => 'x', { operation: 'op' })).toBe('cached');
  // The bulkhead full: one call holds the slot while another is rejected.
  await clock.advance(1_000);
  const hold = deferred<string>();
  const t2 = track(bh.execute(() => hold.promise, { operation: 'op' }));
  expect(await bh.execute(() => 'y', { operation: 'op' }).catch((e: Error) => e.name)).toBe('BulkheadRejectedError');
  hold.resolve('ok');
  await t2.promise;
  // A successful probe closes the breaker; the call succeeds.
  expect(await p.execute(() => 'fresh', { operation: 'op' })).toBe('fresh');

  const labels = new Map<string, Set<string>>();
  for (const m of await registry.getMetricsAsJSON()) {
    const histogram = String(m.type) === 'histogram';
    const names = histogram ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name];
    for (const name of names) {
      const set = labels.get(name) ?? new Set<string>();
      for (const v of m.values) {
        const metricName = (v as { metricName?: string }).metricName ?? m.name;
        if (metricName === name || !histogram) for (const l of Object.keys(v.labels)) set.add(l);
      }
      labels.set(name, set);
    }
  }
  metrics.close();
  return labels;
}

const FUNCTIONS = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'rate',
  'increase',
  'irate',
  'histogram_quantile',
  'label_values',
  'clamp_min',
]);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
]);

interface Parsed {
  metrics: Set<string>;
  /** Every label name the expression matches on or groups by. */
  labels: Set<string>;
  /** Label name -> the values matched (regex alternatives split), for literal values only. */
  values: Map<string, Set<string>>;
}

/** A small PromQL reader: enough to find metric names, label names and matched values in the dashboard's queries. */
function parse(expr: string): Parsed {
  const out: Parsed = { metrics: new Set(), labels: new Set(), values: new Map() };
  const tokens = [
    ...expr
      .replace(/\[[^\]]*\]/g, ' ') // range selectors: [$__rate_interval], [1m]
      .matchAll(/"(?:[^"\\]|\\.)*"|[A-Za-z_:][A-Za-z0-9_:]*|=~|!~|!=|[-+*/(){},=<>]|\d+(?:\.\d+)?/g),
  ].map((m) => m[0]);
  let braces = 0;
  let grouping = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    const next = tokens[i + 1];
    if (t === '{') braces++;
    else if (t === '}') braces--;
    else if (t === ')' && grouping) grouping = false;
    else if (/^[A-Za-z_]/.test(t)) {
      if (braces > 0) {
        // A matcher: name op "value".
        expect(['=', '!=', '=~', '!~'], `${t} in ${expr}`).toContain(next);
        const value = JSON.parse(tokens[i + 2] as string) as string;
        if (t === '__name__') for (const n of value.split('|')) out.metrics.add(n);
        else {
          out.labels.add(t);
          if (!value.includes('$')) {
            const set = out.values.get(t) ?? new Set<string>();
            for (const v of value.split('|')) set.add(v.replace(/\\\./g, '.'));
            out.values.set(t, set);
          }
        }
        i += 2;
      } else if (grouping) out.labels.add(t);
      else if (t === 'by' || t === 'without' || t === 'on' || t === 'ignoring') {
        expect(next, `grouping in ${expr}`).toBe('(');
        grouping = true;
        i++;
      } else if (KEYWORDS.has(t)) {
        // an operator keyword
      } else if (next === '(' || ((next === 'by' || next === 'without') && FUNCTIONS.has(t))) {
        expect(FUNCTIONS, `function ${t} in ${expr}`).toContain(t);
      } else out.metrics.add(t);
    }
  }
  return out;
}

/** Every PromQL expression of the dashboard, with where it is. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const visit = (p: Panel): void => {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
    for (const child of p.panels ?? []) visit(child);
  };
  for (const p of dashboard.panels) visit(p);
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = (v.query as { query: string }).query;
    expect(v.definition).toBe(q);
    const m = /^label_values\((.*), (\w+)\)$/s.exec(q);
    expect(m, `variable ${v.name}: label_values(selector, label)`).not.toBeNull();
    out.push({ where: `variable ${v.name}`, expr: `${m?.[1]} + ${m?.[2]}_label_probe` });
  }
  for (const a of dashboard.annotations.list) if (a.expr !== undefined) out.push({ where: 'annotation', expr: a.expr });
  return out;
}

/** Every metric of the adapter but the two histograms. */
const GAUGES_AND_EVENTS = [
  'bulwark_adaptive_throttle_accepts',
  'bulwark_adaptive_throttle_rejection_probability',
  'bulwark_adaptive_throttle_requests',
  'bulwark_bulkhead_active',
  'bulwark_bulkhead_limit',
  'bulwark_bulkhead_queued',
  'bulwark_circuit_breaker_state',
  'bulwark_events_total',
  'bulwark_rate_limit_available',
  'bulwark_rate_limit_capacity',
  'bulwark_rate_limit_queued',
  'bulwark_retry_budget_calls_in_flight',
  'bulwark_retry_budget_credit',
  'bulwark_retry_budget_retries_in_flight',
  'bulwark_retry_budget_tokens',
];

describe('docs/grafana/bulwark-dashboard.json', () => {
  it('uses only metric names and labels the prometheusMetrics adapter exposes, and values bulwark records', async () => {
    const labels = await exposed();
    // The traffic above makes every metric appear: the check below is against all seventeen.
    expect([...labels.keys()].filter((n) => !/_(bucket|sum|count)$/.test(n)).sort()).toEqual(GAUGES_AND_EVENTS);
    const all = expressions();
    expect(all.length).toBeGreaterThanOrEqual(20);
    const allowed: Record<string, readonly string[]> = {
      event: EVENT_TYPES.filter((t) => t !== 'execution.completed' && t !== 'attempt.completed'),
      result: ['success', 'failure', 'aborted'],
      state: ['closed', 'open', 'half_open', 'isolated'],
    };
    const used = new Set<string>();
    for (const { where, expr } of all) {
      const parsed = parse(expr);
      const probe = [...parsed.metrics].filter((m) => m.endsWith('_label_probe'));
      for (const p of probe) parsed.metrics.delete(p);
      expect(parsed.metrics.size, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
      const available = new Set<string>(['le']);
      for (const m of parsed.metrics) {
        expect(labels.has(m), `${where}: metric ${m} is not exposed by prometheusMetrics`).toBe(true);
        used.add(m.replace(/_(bucket|sum|count)$/, ''));
        for (const l of labels.get(m) ?? []) available.add(l);
      }
      for (const p of probe) parsed.labels.add(p.replace(/_label_probe$/, ''));
      for (const l of parsed.labels) {
        expect(available.has(l), `${where}: label ${l} is on none of ${[...parsed.metrics]}`).toBe(true);
      }
      for (const [label, values] of parsed.values) {
        for (const v of values) {
          if (allowed[label] !== undefined) expect(allowed[label], `${where}: ${label}="${v}"`).toContain(v);
        }
      }
    }
    // Every metric of the adapter has a panel.
    expect([...used].sort()).toEqual(
      [...GAUGES_AND_EVENTS, 'bulwark_attempt_duration_seconds', 'bulwark_execution_duration_seconds'].sort(),
    );
  });

  it('queries through the datasource variable, filters by $policy and $operation, and lays panels out without overlap', () => {
    const vars = dashboard.templating.list.map((v) => [v.name, v.type]);
    expect(vars).toEqual([
      ['datasource', 'datasource'],
      ['policy', 'query'],
      ['operation', 'query'],
    ]);
    const cells = new Set<string>();
    const visit = (p: Panel): void => {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `"${p.title}" overlaps another panel`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      if (p.type === 'row') return;
      expect(p.datasource?.uid, `"${p.title}"`).toBe(DATASOURCE_VAR);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid).toBe(DATASOURCE_VAR);
        expect(t.expr, `"${p.title}" ${t.refId}`).toContain('policy=~"$policy"');
        const parsed = parse(t.expr);
        // Gauges have no operation; a breaker's transitions concern every operation through it (and isolate() and
        // reset() carry operation="default"), so that panel shows them whatever operation is picked.
        const hasOperation = [...parsed.metrics].some(
          (m) => !/^bulwark_(circuit_breaker|bulkhead|rate_limit|retry_budget|adaptive_throttle)_/.test(m),
        );
        const transitions = [...(parsed.values.get('event') ?? [])].every((e) => e.startsWith('circuit.'));
        if (hasOperation && !transitions)
          expect(t.expr, `"${p.title}" ${t.refId}`).toContain('operation=~"$operation"');
      }
    };
    for (const p of dashboard.panels) visit(p);
  });
});
