"""Every notebook run top to bottom in a real Jupyter kernel at full size (``TFCTR_NOTEBOOK_SIZE=full``, the
default), one at a time: its wall time, and an executed copy rendered to markdown with its figures in
``docs/notebooks/`` (linked from the README), so a reader of the repository sees the outputs that git strips from
the notebooks themselves. The test suite runs the same notebooks at ``small`` size.

    python bench/notebooks.py [--size full] [--docs docs/notebooks] [--only 02_apg ...]
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from common import BENCH_DIR, RESULTS, write_result
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import MarkdownExporter

NOTEBOOKS = BENCH_DIR.parent / "notebooks"


def run_notebook(path: Path, size: str):
    """(timing record, executed notebook)."""
    notebook = nbformat.read(path, as_version=4)
    os.environ["TFCTR_NOTEBOOK_SIZE"] = size
    start, error = time.perf_counter(), None
    with tempfile.TemporaryDirectory() as work:
        try:
            NotebookClient(notebook, timeout=900, kernel_name="python3",
                           resources={"metadata": {"path": work}}).execute()
        except CellExecutionError as err:
            error = str(err)[-500:]
    record = {"notebook": path.name, "seconds": time.perf_counter() - start, "ok": error is None, "error": error}
    return record, notebook


def render(notebook, name: str, size: str, docs: Path) -> Path:
    """``docs/<name>.md`` with the outputs, its figures as ``docs/<name>_files/*.png``."""
    header = nbformat.v4.new_markdown_cell(
        f"*Rendered by `python bench/notebooks.py` at `TFCTR_NOTEBOOK_SIZE={size}` on "
        f"{time.strftime('%Y-%m-%d')}; the notebook itself is [`notebooks/{name}.ipynb`]"
        f"(../../notebooks/{name}.ipynb).*")
    notebook.cells.insert(0, header)
    for cell in notebook.cells:  # what the notebook shows; TensorFlow's log lines on stderr are not part of it
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    body, resources = MarkdownExporter().from_notebook_node(
        notebook, resources={"output_files_dir": f"{name}_files", "unique_key": name})
    files = docs / f"{name}_files"
    shutil.rmtree(files, ignore_errors=True)
    for relative, data in resources.get("outputs", {}).items():
        target = docs / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    path = docs / f"{name}.md"
    path.write_text(body)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--docs", type=Path, default=BENCH_DIR.parent / "docs" / "notebooks",
                        help="where the rendered copies go")
    parser.add_argument("--only", nargs="*", help="notebook names (default: all); their rows replace those of the "
                                                  "existing bench/results/notebooks.json")
    args = parser.parse_args()
    args.docs.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if args.only and path.stem not in args.only:
            continue
        record, executed = run_notebook(path, args.size)
        runs.append(record)
        rendered = render(executed, path.stem, args.size, args.docs)
        print(f"{path.name:28s} {record['seconds']:6.1f} s {'ok' if record['ok'] else 'ERROR'} -> {rendered}",
              flush=True)
    payload = {"size": args.size, "runs": runs}
    previous = RESULTS / "notebooks.json"
    if args.only and previous.exists():
        kept = json.loads(previous.read_text())
        if kept.get("size") == args.size:
            redone = {r["notebook"] for r in runs}
            earlier = [r for r in kept["runs"] if r["notebook"] not in redone]
            payload["runs"] = sorted(earlier + runs, key=lambda r: r["notebook"])
            payload["earlier_rows"] = {"command": kept["command"], "date": kept["date"],
                                       "notebooks": [r["notebook"] for r in earlier]}
    write_result("notebooks", payload)


if __name__ == "__main__":
    main()
