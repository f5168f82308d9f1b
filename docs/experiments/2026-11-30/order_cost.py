"""What keeping blocks in order costs: `bench run mini` (the CPU defaults), four runs in one
process alternating ordered and unordered; FIRST is which goes first. Bundles go to OUT/.

    .venv/bin/python docs/experiments/2026-11-30/order_cost.py OUT ordered     # set 1
    .venv/bin/python docs/experiments/2026-11-30/order_cost.py OUT2 unordered  # set 2
"""
import json, sys
from pathlib import Path
from contextlib import contextmanager
import ray
from bench import pipeline, runner, bundle
from bench.config import RunConfig

ordered = pipeline.data_context

@contextmanager
def unordered(mib):
    with ordered(mib):
        ray.data.DataContext.get_current().execution_options.preserve_order = False
        yield

rows = []
out, first = Path(sys.argv[1]), sys.argv[2]
second = "unordered" if first == "ordered" else "ordered"
for i, name in enumerate([first, second] * 2):
    pipeline.data_context = ordered if name == "ordered" else unordered
    path = runner.run("mini", None, RunConfig(), None, out / f"{i}-{name}", show_progress=False)
    r = json.loads((path / bundle.RESULT).read_text())
    rows.append((name, r["throughput_img_s"], r["throughput_img_s_excl_metadata"], r["predictions_sha256"][:16]))
    print(rows[-1], flush=True)
