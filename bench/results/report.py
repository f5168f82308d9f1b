"""`bench report`: one self-contained HTML page (plots embedded as PNG) for one or more bundles:
throughput beside the reference benchmark's published figures, GPU utilisation, power and
memory over time with the pipeline's events marked, CPU and object-store use, stage times."""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.results import bundle, reference  # noqa: E402
from bench.results.result import Result  # noqa: E402

GPU_PANELS = [("util_pct", "GPU utilisation (%)"), ("power_w", "power (W)"), ("mem_used_bytes", "memory used (GB)")]


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _load(path: Path) -> dict[str, Any]:
    result = Result.from_dict(json.loads((path / bundle.RESULT).read_text()))
    telemetry = path / bundle.TELEMETRY
    rows = pq.read_table(telemetry).to_pylist() if telemetry.exists() else []
    return {"path": path, "name": bundle.name_of(path), "result": result, "rows": rows}


def throughput_plot(runs: list[dict[str, Any]]) -> str:
    labels, values, colours = [], [], []
    for run in runs:
        labels.append(f"{run['name']}\n({run['result'].pipeline})")
        values.append(run["result"].throughput_img_s)
        colours.append("tab:blue")
    for ref in reference.published()["runs"]:
        labels.append(f"{ref['system']} {ref['size']}\n" + "\n".join(textwrap.wrap(ref["cluster"], 34)))
        values.append(ref["throughput_img_s"])
        colours.append("tab:gray")
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(labels) + 1))
    ax.barh(labels, values, color=colours)
    ax.set_xscale("log")
    ax.set_xlabel("images / s (log scale); grey: the reference study's published figures")
    ax.invert_yaxis()
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:,.1f}", va="center", fontsize=8)
    return _png(fig)


def _mark_events(ax, events: dict[str, float] | None, t0: float) -> None:
    for name, ts in (events or {}).items():
        ax.axvline(ts - t0, color="tab:red", linestyle="--", linewidth=0.8)
        ax.text(ts - t0, ax.get_ylim()[1], f" {name}", color="tab:red", fontsize=7, va="top", rotation=90)


def _timeline(run: dict[str, Any], source: str, panels: list[tuple[str, str]], title: str) -> str | None:
    rows = [r for r in run["rows"] if r["source"] == source]
    if not rows:
        return None
    t0 = run["result"].events.get("start") or min(r["ts"] for r in rows)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (metric, label) in zip(axes[:, 0], panels):
        series: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r["metric"] == metric:
                key = f"{r['node'][:8]}" + (f" gpu{r['device']}" if r["device"] is not None else "")
                scale = 1e-9 if metric.endswith("_bytes") else 1.0
                series.setdefault(key, []).append((r["ts"] - t0, r["value"] * scale))
        for key, points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key, linewidth=1)
        ax.set_ylabel(label, fontsize=8)
        if series:
            ax.legend(fontsize=7, loc="upper right")
        _mark_events(ax, run["result"].events, t0)
    axes[-1, 0].set_xlabel("seconds since the run started")
    axes[0, 0].set_title(title)
    return _png(fig)


def stages_plot(run: dict[str, Any]) -> str | None:
    stages = run["result"].stages
    if not stages:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(stages) + 1))
    ax.barh([s["operator"] for s in stages], [s["wall_s"] for s in stages], color="tab:green")
    ax.set_xlabel("operator wall time (s), from Ray Data's stats")
    ax.invert_yaxis()
    ax.set_title(f"{run['name']}: where the time goes")
    return _png(fig)


def startup_plot(run: dict[str, Any]) -> str | None:
    """One lane per process (the driver, each model stage): each phase a segment from the
    phase before, in seconds from the timer's start (left of 0: before it)."""
    lanes = run["result"].startup_lanes()
    if not lanes:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.9 * len(lanes) + 1.4))
    colours = plt.get_cmap("tab20").colors
    for y, lane in enumerate(lanes):
        phases = lane["phases"]
        for index, ((_, begin), (phase, end)) in enumerate(zip(phases, phases[1:])):
            ax.broken_barh([(begin, max(end - begin, 0.02))], (y - 0.35, 0.7), color=colours[index % len(colours)])
            if end - begin >= 1.0:  # the short ones are in the table below the plot
                ax.text((begin + end) / 2, y, f"{phase}\n{end - begin:.1f} s", fontsize=6, ha="center", va="center")
    ax.axvline(0, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(lanes)), [f"{lane['lane']} (pid {lane['pid']}, node {lane['node'][:8]})" for lane in lanes],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the timer's start (red line); each mark taken in its own process")
    ax.set_title(f"{run['name']}: start-up")
    return _png(fig)


def nvml_note(nvml: list[dict[str, Any]] | None) -> str:
    """What NVML said on each node, in words (bundles from before it was recorded: nothing)."""
    said = []
    for entry in nvml or []:
        node = entry["node"][:8]
        if entry["status"] == "ok":
            said.append(f"NVML on node {node}: driver {entry['driver_version']}, {entry['gpus']} GPU(s)")
        else:
            said.append(f"NVML on node {node}: {entry['status']} ({entry.get('error', '')})")
    return "; ".join(said)


def startup_table(result: Result) -> str:
    """The lanes' phases as a table: when each was reached, and how long it took from the one before."""
    rows = []
    for lane in result.startup_lanes():
        previous = None
        for phase, at in lane["phases"]:
            took = "" if previous is None else f"{at - previous:.2f}"
            rows.append(f"<tr><td>{html.escape(lane['lane'])} (pid {lane['pid']})</td><td>{html.escape(phase)}</td>"
                        f"<td>{at:.2f}</td><td>{took}</td></tr>")
            previous = at
    if not rows:
        return ""
    return ("<table class=\"startup\"><tr><th>process</th><th>phase</th><th>s from the timer's start</th>"
            "<th>s since the phase before</th></tr>" + "".join(rows) + "</table>")


def startup_note(result: Result) -> str:
    warmup = (result.startup or {}).get("warmup")
    if not result.startup_lanes():
        return "no start-up timeline in this bundle (made before the kit recorded one)"
    if not warmup:
        return "cold start: no warm-up ran before the timer"
    helpers = warmup.get("ray_data_helpers")  # None: a bundle from before the warm-up started them
    started = (f", and started Ray Data's helper actors ({', '.join(helpers)})" if helpers else
               ", with Ray Data's helper actors running already" if helpers == [] else "")
    return (f"before the timer, a warm-up ran {warmup['tasks']} task(s) in {warmup['processes']} worker process(es), "
            f"loading {', '.join(warmup['imports'])}{started}, in {warmup['seconds']:.1f} s")


def _summary_table(runs: list[dict[str, Any]]) -> str:
    head = ("bundle", "pipeline", "images", "img/s", "img/s excl. metadata", "streaming img/s", "start-up s", "J/image", "images/kWh", "dataset sha256", "weights sha256")
    body = []
    for run in runs:
        r, t = run["result"], run["result"].telemetry or {}
        cells = (run["name"], r.pipeline, f"{r.images:,}", f"{r.throughput_img_s:,.2f}",
                 f"{r.throughput_img_s_excl_metadata:,.2f}",
                 f"{r.streaming_img_s:,.2f}" if r.streaming_img_s else "n/a",
                 f"{r.startup_s:.1f}" if r.startup_s is not None else "n/a",
                 f"{t['energy_j_per_image']:.3f}" if t.get("energy_j_per_image") else "n/a",
                 f"{t['images_per_kwh']:,.0f}" if t.get("images_per_kwh") else "n/a",
                 r.dataset_sha256[:16], r.weights_sha256[:16])
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(body) + "</table>")


def render(paths: list[Path]) -> str:
    runs = [_load(p) for p in paths]
    sections = [("Throughput", throughput_plot(runs), "", "")]
    for run in runs:
        unavailable = (run["result"].telemetry or {}).get("unavailable") or []

        def notes(*sources: str) -> str:
            return "; ".join(f"{u['metric']}: {u['reason']}" for u in unavailable if u["source"] in sources)

        name = run["name"]
        gpu = _timeline(run, "gpu", GPU_PANELS, f"{name}: GPUs")
        host = _timeline(run, "host", [("cpu_pct", "CPU (%)"), ("mem_used_bytes", "memory used (GB)")], f"{name}: nodes")
        store = _timeline(run, "object_store", [("used_bytes", "object store (GB)"), ("spilled_bytes", "spilled (GB)")],
                          f"{name}: Ray object store")
        nvml = nvml_note((run["result"].telemetry or {}).get("nvml"))
        gpu_notes = [notes("gpu") or ("" if gpu else "no GPU telemetry in this run"), nvml]
        sections += [
            (f"{name}: GPUs over time", gpu, "; ".join(n for n in gpu_notes if n), ""),
            (f"{name}: CPU and memory", host, notes("host", "node"), ""),
            (f"{name}: object store", store, notes("object_store") or ("" if store else "no object-store telemetry"), ""),
            (f"{name}: start-up", startup_plot(run), startup_note(run["result"]), startup_table(run["result"])),
            (f"{name}: stage times", stages_plot(run), "", ""),
        ]
    plots = [s for s in sections if s[1]]
    parts = []
    for title, png, note, table in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if png:
            parts.append(f'<img class="plot" alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        parts.append(table)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raybench report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}} img.plot{{max-width:100%}} .note{{color:#a60}}</style>
</head><body data-plots-total="{len(plots)}">
<h1>Ray Data batch inference: ResNet-50, offline</h1>
{_summary_table(runs)}
{''.join(parts)}
<script>
// Self-check: how many plots actually decoded and rendered (a broken image shows 0 width).
window.addEventListener("load", () => {{
  const ok = [...document.querySelectorAll("img.plot")].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.plotsRendered = ok;
}});
</script>
</body></html>
"""


def write(paths: list[Path], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(paths))
    return out
