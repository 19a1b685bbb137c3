# ruff: noqa: E501  (HTML template text: long lines are markup, not code)
"""The Jinja2 template of the DPO report (kept in Python so an installed package carries it)."""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data residency audit report</title>
<style>
  body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 12px; color: #1b1b1b; margin: 24px; }
  h1 { font-size: 20px; margin-bottom: 4px; } h2 { font-size: 15px; margin-top: 22px; border-bottom: 1px solid #ccc; }
  table { border-collapse: collapse; margin: 6px 0 12px; } th, td { border: 1px solid #ccc; padding: 3px 6px;
  text-align: left; vertical-align: top; } th { background: #f0f0f0; } td.n { text-align: right; }
  .meta { color: #555; } .ok { color: #1e8449; font-weight: bold; } .bad { color: #c0392b; font-weight: bold; }
  .grid { display: flex; gap: 24px; flex-wrap: wrap; } code { font-size: 10px; word-break: break-all; }
  .deny { color: #c0392b; } .rewrite { color: #d68910; } .allow { color: #1e8449; }
  td.article { white-space: nowrap; }
  @page { size: A4 landscape; margin: 12mm; }
</style>
</head>
<body>
<h1>Data residency audit report</h1>
<p class="meta">Generated {{ d.generated_at }} from {{ d.database }}.
Decisions {{ first }} to {{ last }}.
Filters: {% for k, v in d.filters.items() if v %}{{ k }}={{ v }} {% else %}none{% endfor %}.</p>

<h2>Totals</h2>
<p id="total-decisions">Total decisions: <strong>{{ d.rows }}</strong>
{% for name, n in d.by_decision %} · <span class="{{ name }}">{{ name }}: {{ n }}</span>{% endfor %}</p>
<div class="grid">
<table><caption>By regime</caption><tr><th>Regime</th><th>Decisions</th><th>Denied</th><th>Rewritten</th></tr>
{% for regime, n, dn, rw in d.by_regime %}<tr><td>{{ regime }}</td><td class="n">{{ n }}</td>
<td class="n">{{ dn }}</td><td class="n">{{ rw }}</td></tr>{% endfor %}</table>
<table><caption>By decision</caption><tr><th>Decision</th><th>Count</th></tr>
{% for name, n in d.by_decision %}<tr><td class="{{ name }}">{{ name }}</td><td class="n">{{ n }}</td></tr>{% endfor %}
</table>
<table><caption>By cluster</caption><tr><th>Cluster</th><th>Decisions</th><th>Denied</th><th>Rewritten</th></tr>
{% for cl, n, dn, rw in d.by_cluster %}<tr><td>{{ cl }}</td><td class="n">{{ n }}</td>
<td class="n">{{ dn }}</td><td class="n">{{ rw }}</td></tr>{% endfor %}</table>
</div>

<h2>Timeline (decisions per {{ d.bucket }}, UTC)</h2>
{{ svg | safe }}

<h2>Most refused and rewritten routes and services</h2>
{% if d.top_routes %}
<table><tr><th>Decision</th><th>Service / object</th><th>Kind</th><th>Route</th><th>Cluster</th><th>Count</th></tr>
{% for r in d.top_routes %}<tr><td class="{{ r.decision }}">{{ r.decision }}</td><td>{{ r.subject }}</td>
<td>{{ r.kind or "route" }}</td><td>{% if r.source_cluster or r.destination_cluster %}{{ r.source_cluster }} → {{ r.destination_cluster }}{% endif %}</td>
<td>{{ r.cluster }}</td><td class="n">{{ r.n }}</td></tr>{% endfor %}</table>
{% else %}<p>No route or object was refused or rewritten.</p>{% endif %}

<h2>Denials ({{ d.denials_total }}{% if d.denials_total > denial_limit %}, newest {{ denial_limit }} shown{% endif %})</h2>
{% if d.denials %}
<table><tr><th>Time (UTC)</th><th>Cluster</th><th>Object or route</th><th>Regime</th><th>Article</th>
<th>Regions / clusters</th><th>What happened</th><th>Remedy</th></tr>
{% for row in d.denials %}{% for v in (row.violations or [{}]) %}<tr>
<td>{{ row.time }}</td><td>{{ row.cluster }}</td>
<td>{% if row.service %}{{ row.service }}{% else %}{{ row.kind }} {{ row.namespace }}/{{ row.name }}{% endif %}</td>
<td>{{ v.regime }}</td><td class="article">{{ v.article }}</td>
<td>{% if row.source_cluster %}{{ row.source_cluster }} → {{ row.destination_cluster }}; {% endif %}{% if v.cluster %}refused: {{ v.cluster }}; {% endif %}permitted: {{ row.permitted_clusters | join(", ") or "none" }}</td>
<td>{{ v.message }}</td><td>{{ v.remedy }}</td></tr>{% endfor %}{% endfor %}
</table>
{% else %}<p>No denials.</p>{% endif %}

<h2>Policy revisions in force</h2>
<table><tr><th>Revision</th><th>First decision</th><th>Last decision</th><th>Decisions</th></tr>
{% for r in d.revisions %}<tr><td><code>{{ r.revision }}</code></td><td>{{ r.first }}</td><td>{{ r.last }}</td>
<td class="n">{{ r.rows }}</td></tr>{% endfor %}</table>

<h2>Chain heads</h2>
{% if d.verification %}
<p>Integrity: {% if d.verification.ok %}<span class="ok">every chain verifies</span>
{% else %}<span class="bad">TAMPERING DETECTED</span>{% endif %} ({{ d.verification.rows }} rows walked).</p>
<table><tr><th>Chain</th><th>Rows</th><th>Seq</th><th>Head hash</th><th>Verifies</th></tr>
{% for h in d.verification.chains %}<tr><td><code>{{ h.chain_id }}</code></td><td class="n">{{ h.rows }}</td>
<td class="n">{{ h.first_seq }}–{{ h.last_seq }}</td><td><code>{{ h.head_hash }}</code></td>
<td>{% if h.verified %}<span class="ok">yes</span>{% else %}<span class="bad">no</span>{% endif %}</td></tr>{% endfor %}
</table>
{% for f in d.verification.findings %}<p class="bad">{{ f }}</p>{% endfor %}
{% else %}<p>Chains were not verified for this report.</p>{% endif %}
</body>
</html>
"""
