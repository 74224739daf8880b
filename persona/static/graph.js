// The clickable memory graph: a Streamlit v2 component around vis-network (loaded just above this file).
// Python sends the nodes, edges and options pyvis built (plain-text canvas labels, escaped tooltips) and reads back:
//   state "selected": the node clicked (its details open beside the graph)
//   trigger "expand": the node double-clicked (Python adds its neighbours)
// Hover dims everything but the node's neighbourhood; "Find" zooms to the first node whose label matches.
// Only fixed strings and already-escaped tooltips become markup; names go in as text (textContent).

const graphs = new WeakMap();

function tooltipElement(tip) {
  const box = document.createElement("div");
  box.innerHTML = tip; // escaped by persona.viz.tooltip_html
  return box;
}

function plainLabel(label) {
  // Labels are the text a person reads (drawn on the canvas, never parsed as markup).
  return String(label || "").toLowerCase();
}

function buildShell(parent) {
  const root = document.createElement("div");
  root.className = "persona-graph";
  root.innerHTML =
    '<div class="bar"><div class="legend" aria-label="Legend"></div>' +
    '<div class="find"><label>Find <input type="search" placeholder="a name or title"></label>' +
    '<output aria-live="polite"></output></div></div>' +
    '<div class="stage"><div class="canvas" role="img" aria-label="Memory graph"></div>' +
    '<div class="notes" aria-live="polite"></div></div>' +
    '<div class="hint">Click a node for its details · double-click to add its neighbours · hover to see its links</div>';
  parent.appendChild(root);
  return root;
}

function fillLegend(root, data) {
  const legend = root.querySelector(".legend");
  legend.replaceChildren();
  const items = data.legend.map((item) => [item.colour, `${item.type}: ${item.text}`, false]);
  if (data.highlighted) items.push(["#D62728", "source of the last chat answer", true]);
  for (const [colour, text, ring] of items) {
    const row = document.createElement("div");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = ring ? "#fff" : colour;
    if (ring) swatch.style.border = `2px solid ${colour}`;
    row.append(swatch, document.createTextNode(text));
    row.title = text;
    legend.appendChild(row);
  }
  const notes = root.querySelector(".notes");
  notes.replaceChildren(
    ...data.notes.map((text) => {
      const p = document.createElement("p");
      p.textContent = text;
      return p;
    }),
  );
}

function neighbourhood(network, id) {
  return new Set([id, ...network.getConnectedNodes(id)]);
}

function dimOthers(nodes, keep) {
  nodes.update(nodes.getIds().map((id) => ({ id, opacity: keep === null || keep.has(id) ? 1 : 0.15 })));
}

function zoomTo(network, root, id) {
  network.selectNodes([id]);
  network.focus(id, { scale: 1.3, animation: { duration: 400, easingFunction: "easeInOutQuad" } });
  root.setAttribute("data-zoomed", id);
}

function draw(component, root, data) {
  const { setStateValue, setTriggerValue } = component;
  const started = performance.now();
  const nodes = new vis.DataSet(data.nodes.map((n) => ({ ...n, title: tooltipElement(n.tip) })));
  const edges = new vis.DataSet(data.edges);
  const canvas = root.querySelector(".canvas");
  const network = new vis.Network(canvas, { nodes, edges }, data.options);
  root.setAttribute("data-node-count", String(data.nodes.length));
  root.network = network; // for the browser tests: positions of nodes to click on
  root.setAttribute("data-settled", "false");

  let settled = false;
  const settle = () => {
    if (settled) return;
    settled = true;
    network.stopSimulation();
    network.setOptions({ physics: { enabled: false } });
    root.setAttribute("data-settle-ms", String(Math.round(performance.now() - started)));
    root.setAttribute("data-settled", "true");
    const target = data.zoom_to || data.focus;
    if (target) zoomTo(network, root, target);
  };
  network.once("stabilizationIterationsDone", settle);
  const timer = setTimeout(settle, data.settle_ms);
  if (!data.options.physics.enabled) settle();

  network.on("click", (params) => {
    if (params.nodes.length) {
      root.setAttribute("data-selected", params.nodes[0]);
      setStateValue("selected", params.nodes[0]);
    }
  });
  network.on("doubleClick", (params) => {
    if (params.nodes.length) setTriggerValue("expand", params.nodes[0]);
  });
  network.on("hoverNode", (params) => {
    dimOthers(nodes, neighbourhood(network, params.node));
    root.setAttribute("data-hovered", params.node);
  });
  network.on("blurNode", () => {
    dimOthers(nodes, null);
    root.removeAttribute("data-hovered");
  });

  const input = root.querySelector(".find input");
  const output = root.querySelector(".find output");
  input.onkeydown = (event) => {
    if (event.key !== "Enter") return;
    const wanted = input.value.trim().toLowerCase();
    if (!wanted) return;
    // An exact name first ("Tomás" the person, not an episode that mentions him), then any label containing it.
    const match =
      data.nodes.find((n) => plainLabel(n.label) === wanted) ||
      data.nodes.find((n) => plainLabel(n.label).includes(wanted));
    output.textContent = match ? "" : "no match";
    if (match) zoomTo(network, root, match.id);
  };
  return { network, timer };
}

export default function (component) {
  const { data, parentElement } = component;
  let entry = graphs.get(parentElement);
  if (entry && entry.signature === data.signature) return entry.cleanup; // a rerun with the same graph: keep it
  if (entry) entry.cleanup();
  const root = buildShell(parentElement);
  root.querySelector(".canvas").style.height = `${data.height || 620}px`;
  fillLegend(root, data);
  const { network, timer } = draw(component, root, data);
  const cleanup = () => {
    clearTimeout(timer);
    network.destroy();
    root.remove();
    graphs.delete(parentElement);
  };
  entry = { signature: data.signature, cleanup };
  graphs.set(parentElement, entry);
  return cleanup;
}
