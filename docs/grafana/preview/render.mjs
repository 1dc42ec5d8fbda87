// Renders docs/grafana/preview.png: a preview of docs/grafana/bulwark-dashboard.json drawn from real data. It is NOT
// Grafana: it runs a small demo service (bulwark + bulwark/prometheus, a flaky HTTP dependency on 127.0.0.1), has a
// real Prometheus scrape its /metrics every second, evaluates every query of the dashboard through Prometheus's
// HTTP API (the exact PromQL of the JSON, with $policy and $operation set to All), draws each panel with inline SVG
// at its gridPos, and screenshots the page with headless Chromium.
//
// Needs: `npm run build` first; the `prometheus` and `chromium` binaries (Debian: apt-get install prometheus
// chromium; or set PROMETHEUS and CHROMIUM). Takes about 3 minutes (the demo runs in real time):
//   node docs/grafana/preview/render.mjs
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import { bulkhead, circuitBreaker, constant, fallback, pipeline, retry, timeout } from '../../../dist/index.js';
import { prometheusMetrics } from '../../../dist/prometheus.js';
import { interceptor } from '../../../dist/undici.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const DASHBOARD = JSON.parse(readFileSync(join(HERE, '..', 'bulwark-dashboard.json'), 'utf8'));
const OUT = join(HERE, '..', 'preview.png');
const PROMETHEUS = process.env.PROMETHEUS ?? 'prometheus';
const CHROMIUM = process.env.CHROMIUM ?? 'chromium';
/** Demo length and phases, in seconds. */
const PHASES = [
  { until: 40, name: 'healthy' },
  { until: 80, name: 'quotes outage (503s), stock slow' },
  { until: 120, name: 'recovery' },
];
const RUN_S = PHASES.at(-1).until;
const RATE_WINDOW = '10s'; // what $__rate_interval becomes: 4 scrape intervals of 1 s, plus margin
const STEP_S = 2;

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

// --- the flaky dependency -----------------------------------------------------------------------------------------
const started = Date.now();
const phase = () => PHASES.findIndex((p) => (Date.now() - started) / 1000 < p.until);
const dependency = createServer((req, res) => {
  const p = phase();
  if (req.url.startsWith('/quotes')) {
    const failing = p === 1 ? 0.85 : 0.03;
    const ms = 20 + Math.random() * 60;
    setTimeout(() => res.writeHead(Math.random() < failing ? 503 : 200).end('{}'), ms);
  } else {
    const ms = p === 1 ? 80 + Math.random() * 400 : 15 + Math.random() * 40;
    setTimeout(() => res.writeHead(200).end('{}'), ms);
  }
});
const depPort = await listen(dependency);
const origin = `http://127.0.0.1:${depPort}`;

// --- the demo service: bulwark policies with the Prometheus adapter ------------------------------------------------
const registry = new Registry();
const metrics = prometheusMetrics({ registry });
metrics.attachAll();
const quotes = pipeline(
  retry({ name: 'quotes-retry', maxAttempts: 3, backoff: constant(50) }),
  circuitBreaker({
    name: 'quotes-breaker',
    window: { kind: 'count', size: 20 },
    minimumCalls: 10,
    failureRate: 0.5,
    halfOpenAfterMs: 5_000,
  }),
  timeout({ name: 'quotes-timeout', ms: 1_000 }),
);
const agent = new Agent().compose(interceptor({ policy: quotes }));
const stock = pipeline(
  fallback({ name: 'stock-fallback', value: { cached: true } }),
  timeout({ name: 'stock-timeout', ms: 250 }),
  bulkhead({ name: 'stock-bulkhead', limit: 4, queue: 4 }),
);
const stockAgent = new Agent();

const metricsServer = createServer(async (_req, res) => {
  res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
});
const metricsPort = await listen(metricsServer);

let running = true;
async function traffic() {
  while (running) {
    const id = Math.floor(Math.random() * 100);
    agent
      .request({ origin, path: `/quotes/${id}`, method: 'GET', bulwark: { operation: 'GET /quotes/:id' } })
      .then((r) => r.body.dump())
      .catch(() => {});
    for (let i = 0; i < 2; i++) {
      stock
        .execute(
          async (ctx) => {
            const r = await stockAgent.request({ origin, path: `/stock/${id}`, method: 'GET', signal: ctx.signal });
            await r.body.dump();
            return r.statusCode;
          },
          { operation: 'GET /stock/:sku' },
        )
        .catch(() => {});
    }
    await sleep(40 + Math.random() * 40);
  }
}

// --- a real Prometheus scraping the demo ---------------------------------------------------------------------------
const work = mkdtempSync(join(tmpdir(), 'bulwark-grafana-preview-'));
const probe = createServer();
const promPort = await listen(probe); // a free port for Prometheus
await new Promise((resolve) => probe.close(resolve));
writeFileSync(
  join(work, 'prometheus.yml'),
  `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:${metricsPort}']\n`,
);
const prom = spawn(
  PROMETHEUS,
  [
    `--config.file=${join(work, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(work, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let promLog = '';
prom.stderr.on('data', (d) => {
  promLog += d;
});
const api = `http://127.0.0.1:${promPort}/api/v1`;

async function stopAll() {
  running = false;
  prom.kill('SIGTERM');
  metrics.close();
  dependency.close();
  metricsServer.close();
  await agent.close();
  await stockAgent.close();
}

try {
  for (let i = 0; ; i++) {
    if (i > 60) throw new Error(`prometheus did not start:\n${promLog}`);
    const ok = await fetch(`${api}/status/buildinfo`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(500);
  }
  const from = Date.now() / 1000;
  console.log(`demo running for ${RUN_S} s; prometheus on ${promPort}`);
  traffic();
  await sleep((RUN_S - (Date.now() - started) / 1000) * 1000);
  running = false;
  await sleep(3_000); // a last scrape
  const to = Date.now() / 1000;

  // --- every query of the dashboard, through Prometheus -----------------------------------------------------------
  const expand = (expr) =>
    expr.replaceAll('$__rate_interval', RATE_WINDOW).replaceAll('"$policy"', '".*"').replaceAll('"$operation"', '".*"');
  const query = async (expr) => {
    const url = `${api}/query_range?${new URLSearchParams({ query: expand(expr), start: String(from), end: String(to), step: String(STEP_S) })}`;
    const body = await (await fetch(url)).json();
    if (body.status !== 'success') throw new Error(`query failed: ${body.error}\n${expr}`);
    return body.data.result;
  };
  const panels = [];
  for (const p of DASHBOARD.panels) {
    if (p.type === 'row') {
      panels.push({ ...p, series: [] });
      continue;
    }
    const series = [];
    for (const t of p.targets) {
      for (const r of await query(t.expr)) {
        const legend = t.legendFormat.replace(/\{\{(\w+)\}\}/g, (_, l) => r.metric[l] ?? '');
        series.push({ legend, values: r.values.map(([ts, v]) => [ts - from, Number(v)]) });
      }
    }
    panels.push({ ...p, series });
  }
  writeFileSync(join(work, 'preview.html'), html(panels, to - from));
  await screenshot(join(work, 'preview.html'));
  console.log(`wrote ${OUT}`);
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}

// --- drawing --------------------------------------------------------------------------------------------------------
function html(panels, span) {
  const unitW = 1600 / 24;
  const unitH = 30;
  const colors = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a', '#ff9830'];
  const fmt = (v, unit) => {
    if (!Number.isFinite(v)) return '';
    if (unit === 'percentunit') return `${(v * 100).toFixed(0)}%`;
    if (unit === 's') return v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(1)} s`;
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2);
  };
  const maxY = Math.max(...panels.flatMap((p) => [p.gridPos.y + p.gridPos.h]));
  const parts = [];
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos;
    const box = `left:${x * unitW + 4}px;top:${y * unitH + 4}px;width:${w * unitW - 8}px;height:${h * unitH - 8}px`;
    if (p.type === 'row') {
      parts.push(`<div class="row" style="${box}">${esc(p.title)}</div>`);
      continue;
    }
    const W = w * unitW - 8;
    const H = h * unitH - 8;
    const legendRows = Math.min(p.series.length, 4);
    const plot = { l: p.type === 'state-timeline' ? 130 : 58, r: 10, t: 28, b: 22 + legendRows * 15 };
    const pw = W - plot.l - plot.r;
    const ph = H - plot.t - plot.b;
    const sx = (t) => plot.l + (t / span) * pw;
    let svg = `<text x="8" y="18" class="title">${esc(p.title)}</text>`;
    if (p.type === 'state-timeline') {
      const map = p.fieldConfig.defaults.mappings[0].options;
      const lanes = p.series.length || 1;
      const laneH = Math.min(28, (ph - 10) / lanes);
      p.series.forEach((s, i) => {
        const y0 = plot.t + 6 + i * (laneH + 4);
        svg += `<text x="${plot.l - 6}" y="${y0 + laneH / 2 + 4}" class="axis" text-anchor="end">${esc(s.legend)}</text>`;
        s.values.forEach(([t, v], j) => {
          const next = s.values[j + 1]?.[0] ?? t + STEP_S;
          const m = map[String(v)];
          svg += `<rect x="${sx(t)}" y="${y0}" width="${Math.max(0, sx(next) - sx(t)) + 0.5}" height="${laneH}" fill="${stateColor(m?.color)}"/>`;
        });
      });
      Object.values(map).forEach((m, i) => {
        svg += `<rect x="${plot.l + i * 90}" y="${H - 16}" width="10" height="10" fill="${stateColor(m.color)}"/><text x="${plot.l + i * 90 + 14}" y="${H - 7}" class="legend">${m.text}</text>`;
      });
    } else {
      const unit = p.fieldConfig.defaults.unit;
      let top = Math.max(0, ...p.series.flatMap((s) => s.values.map(([, v]) => (Number.isFinite(v) ? v : 0))));
      top = unit === 'percentunit' ? 1 : top > 0 ? top * 1.1 : 1;
      const sy = (v) => plot.t + ph - (v / top) * ph;
      for (let k = 0; k <= 4; k++) {
        const v = (top * k) / 4;
        svg += `<line x1="${plot.l}" x2="${plot.l + pw}" y1="${sy(v)}" y2="${sy(v)}" class="grid"/><text x="${plot.l - 6}" y="${sy(v) + 4}" class="axis" text-anchor="end">${fmt(v, unit)}</text>`;
      }
      for (let t = 0; t <= span; t += 20) {
        svg += `<text x="${sx(t)}" y="${plot.t + ph + 14}" class="axis" text-anchor="middle">${Math.round(t)} s</text>`;
      }
      const bars = p.fieldConfig.defaults.custom?.drawStyle === 'bars';
      p.series.forEach((s, i) => {
        const c = colors[i % colors.length];
        const dashed = /^limit /.test(s.legend) ? ' stroke-dasharray="8 6"' : '';
        if (bars) {
          for (const [t, v] of s.values) {
            if (v > 0)
              svg += `<rect x="${sx(t) - 1.5}" y="${sy(v)}" width="3" height="${plot.t + ph - sy(v)}" fill="${c}"/>`;
          }
        } else {
          let d = '';
          let prev;
          for (const [t, v] of s.values) {
            if (!Number.isFinite(v)) {
              prev = undefined;
              continue;
            }
            d += `${prev === undefined || t - prev > STEP_S * 1.5 ? 'M' : 'L'}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`;
            prev = t;
          }
          svg += `<path d="${d}" fill="none" stroke="${c}" stroke-width="1.5"${dashed}/>`;
        }
        if (i < legendRows) {
          const last = [...s.values].reverse().find(([, v]) => Number.isFinite(v))?.[1];
          const ly = plot.t + ph + 30 + i * 15;
          svg += `<rect x="${plot.l}" y="${ly - 9}" width="10" height="3" fill="${c}"/><text x="${plot.l + 16}" y="${ly}" class="legend">${esc(s.legend)}</text><text x="${W - 12}" y="${ly}" class="legend" text-anchor="end">last ${fmt(last, unit)}</text>`;
        }
      });
      if (p.series.length > legendRows) {
        svg += `<text x="${W - 12}" y="18" class="axis" text-anchor="end">+${p.series.length - legendRows} more series</text>`;
      }
      if (p.series.length === 0)
        svg += `<text x="${W / 2}" y="${H / 2}" class="axis" text-anchor="middle">No data</text>`;
    }
    parts.push(`<svg class="panel" style="${box}" viewBox="0 0 ${W} ${H}">${svg}</svg>`);
  }
  const phases = PHASES.map((p, i) => `${i === 0 ? 0 : PHASES[i - 1].until}-${p.until} s: ${p.name}`).join('; ');
  return `<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#111217;font-family:Inter,Helvetica,Arial,sans-serif;color:#ccccdc}
.head{height:56px;padding:10px 14px;box-sizing:border-box;border-bottom:1px solid #2c3235}
.head b{font-size:16px;color:#fff}.head span{font-size:12px;margin-left:14px;color:#9fa7b3}
.board{position:relative;height:${maxY * unitH + 8}px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px}
.row{position:absolute;font-size:14px;font-weight:600;color:#fff;padding-top:6px}
.title{font-size:13px;font-weight:600;fill:#fff}.axis{font-size:10px;fill:#9fa7b3}.legend{font-size:11px;fill:#ccccdc}
.grid{stroke:#2c3235;stroke-width:1}
</style></head><body><div class="head"><b>${esc(DASHBOARD.title)}</b>
<span>PREVIEW rendered from the dashboard's own PromQL by a real Prometheus scraping a demo service; drawn by docs/grafana/preview/render.mjs, not by Grafana.</span><br>
<span>Policy: All · Operation: All · $__rate_interval = ${RATE_WINDOW} · ${phases}</span></div>
<div class="board">${parts.join('\n')}</div></body></html>`;
}

function stateColor(name) {
  return { green: '#73bf69', yellow: '#fade2a', red: '#f2495c', purple: '#b877d9' }[name] ?? '#555';
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

async function screenshot(page) {
  const height = 56 + Math.max(...DASHBOARD.panels.map((p) => p.gridPos.y + p.gridPos.h)) * 30 + 12;
  await new Promise((resolve, reject) => {
    const c = spawn(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--hide-scrollbars',
        `--window-size=1600,${height}`,
        `--screenshot=${OUT}`,
        `file://${page}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`chromium exited ${code}:\n${err}`))));
  });
}
