"""The report's Jinja2 templates: one self-contained HTML page (inline SVG plots and PNG
images, inline styles, no external asset) and its Markdown twin, both rendered from the same
page model (:mod:`rtl_gen.tasks.report`).

Kept as Python strings, not files, so that they ship with the package as its code does.

The page model: ``title``, ``subtitle``, ``sections``, each with ``id``, ``title``,
``blocks``; a block is ``{"kind": "text", "parts": [...]}`` (a paragraph: parts of
``{"text": ..., "code": bool}``), ``{"kind": "table", "columns": [...], "rows": [[...]],
"caption": parts, "numeric": [bool per column]}``, ``{"kind": "figure", "title": ...,
"svg": ..., "caption": parts}`` or ``{"kind": "grid", "caption": parts, "images":
[{"src", "pred", "true", "ok", "index"}], "open": bool}``.
"""

from __future__ import annotations

__all__ = ["HTML", "MARKDOWN"]

#: Light styling, inline: the page works offline and prints.
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
max-width:64em;margin:2em auto;padding:0 1em;color:#1f2328;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;
margin-top:1.8em}p.sub{color:#59636e;margin-top:0}
nav ol{columns:2;padding-left:1.2em}nav a{color:#0969da;text-decoration:none}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;
background:#f6f8fa;padding:.1em .3em;border-radius:4px}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
caption{caption-side:top;text-align:left;color:#59636e;padding-bottom:.3em}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fbfcfd}
figure{margin:1em 0 1.6em}figure svg{max-width:100%;height:auto}
figcaption{color:#59636e;font-size:.92em}
.grid{display:flex;flex-wrap:wrap;gap:.5em;margin:.6em 0}
.cell{width:5.2em;text-align:center;font-size:.8em;border:1px solid #d0d7de;border-radius:4px;
padding:.25em}.cell img{width:4.4em;height:4.4em;image-rendering:pixelated;display:block;
margin:0 auto .2em}.cell.bad{border-color:#cf222e;background:#fff5f5}
.cell .bad{color:#cf222e;font-weight:600}
details summary{cursor:pointer;margin:.4em 0}
footer{margin-top:3em;color:#59636e;font-size:.85em}
"""

HTML = """\
{%- macro text(parts) -%}
{%- for p in parts -%}
{%- if p.code %}<code>{{ p.text }}</code>{% else %}{{ p.text }}{% endif -%}
{%- endfor -%}
{%- endmacro -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ style | safe }}</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p class="sub">{{ text(subtitle) }}</p>
</header>
<nav><ol>
{%- for s in sections %}
<li><a href="#{{ s.id }}">{{ s.title }}</a></li>
{%- endfor %}
</ol></nav>
{%- for s in sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{%- for b in s.blocks %}
{%- if b.kind == "text" %}
<p>{{ text(b.parts) }}</p>
{%- elif b.kind == "table" %}
<table>
{%- if b.caption %}<caption>{{ text(b.caption) }}</caption>{% endif %}
<thead><tr>{% for c in b.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in b.rows %}
<tr>
{%- for v in row %}<td{% if b.numeric[loop.index0] %} class="n"{% endif %}>{{ v }}</td>
{%- endfor %}</tr>
{%- endfor %}
</tbody>
</table>
{%- elif b.kind == "figure" %}
<figure>
{{ b.svg | safe }}
<figcaption><b>{{ b.title }}.</b> {{ text(b.caption) }}</figcaption>
</figure>
{%- elif b.kind == "grid" %}
<details{% if b.open %} open{% endif %}>
<summary>{{ text(b.caption) }}</summary>
<div class="grid">
{%- for im in b.images %}
<div class="cell{% if not im.ok %} bad{% endif %}">
{%- if im.ok %}<img src="{{ im.src }}" alt="test image {{ im.index }}">{{ im.pred }}
{%- else %}<img src="{{ im.src }}" alt="test image {{ im.index }}">
<span class="bad">{{ im.pred }}</span> (true {{ im.true }}){% endif %}</div>
{%- endfor %}
</div>
</details>
{%- endif %}
{%- endfor %}
</section>
{%- endfor %}
<footer>{{ text(footer) }}</footer>
</body>
</html>
"""

MARKDOWN = """\
{%- macro text(parts) -%}
{%- for p in parts -%}
{%- if p.code %}`{{ p.text }}`{% else %}{{ p.text }}{% endif -%}
{%- endfor -%}
{%- endmacro -%}
# {{ title }}

{{ text(subtitle) }}
{% for s in sections %}
## {{ s.title }}
{% for b in s.blocks %}
{%- if b.kind == "text" %}
{{ text(b.parts) }}
{% elif b.kind == "table" %}
{% if b.caption %}{{ text(b.caption) }}

{% endif -%}
| {{ b.columns | map("mdcell") | join(" | ") }} |
|{% for c in b.columns %}---|{% endfor %}
{% for row in b.rows -%}
| {{ row | map("mdcell") | join(" | ") }} |
{% endfor %}
{%- elif b.kind == "figure" %}
{{ b.title }}: a plot in report.html. {{ text(b.caption) }}
{% elif b.kind == "grid" %}
{{ text(b.caption) }} The images are in report.html.
{% for im in b.images if not im.ok %}
{%- if loop.first %}
Misclassified:
{% endif %}
- test image {{ im.index }}: predicted {{ im.pred }}, true {{ im.true }}
{%- endfor %}
{% endif %}
{%- endfor %}
{%- endfor %}
{{ text(footer) }}
"""
