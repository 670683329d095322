const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
function render(spec) {
  const byTag = {};
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (byTag[tag] = byTag[tag] || []).push({path, method, op});
    }
  }
  let html = `<h1>${esc(spec.info.title)} ${esc(spec.info.version)}</h1><p>${esc(spec.info.description)}</p>`;
  for (const [tag, ops] of Object.entries(byTag)) {
    html += `<h2>${esc(tag)}</h2>`;
    for (const {path, method, op} of ops) {
      html += `<div class="op"><div><span class="method ${method}">${method}</span><code>${esc(path)}</code>`;
      if (op.security) html += ` <span class="lock">requires a bearer token</span>`;
      html += `</div><p>${esc(op.summary || "")} ${esc(op.description || "")}</p>`;
      if (op.parameters) html += `<p><b>Parameters:</b> ${op.parameters.map(p => `<code>${esc(p.name)}</code> (${esc(p.in)})`).join(", ")}</p>`;
      if (op.requestBody) html += `<p><b>Body:</b> ${Object.keys(op.requestBody.content || {}).map(esc).join(", ")}</p><pre>${esc(JSON.stringify(Object.values(op.requestBody.content)[0].schema, null, 1))}</pre>`;
      html += `<p><b>Responses:</b> ${Object.entries(op.responses || {}).map(([code, r]) => `<code>${esc(code)}</code> ${esc(r.description)}`).join("; ")}</p></div>`;
    }
  }
  html += `<h2>Schemas</h2><pre>${esc(JSON.stringify((spec.components || {}).schemas, null, 2))}</pre>`;
  document.getElementById("root").innerHTML = html;
}
fetch("/openapi.json").then(r => r.json()).then(render)
  .catch(e => { document.getElementById("root").textContent = "Could not load /openapi.json: " + e; });
