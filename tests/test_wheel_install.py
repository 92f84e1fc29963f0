"""The package as a user gets it: a wheel built from the checkout, installed (not editable) into a fresh virtual
environment, runs the README's Quickstart and CLI blocks as written, and ``import tfctr`` alone lets Keras load a
saved tfctr model. This is what an editable install hides (a module left out of the wheel, a side effect the
Quickstart relies on).

The fresh environment borrows the third-party dependencies of the test environment (a ``.pth`` line: the same
versions ``make test`` installed from setup.py's requirements, so nothing is downloaded) and ``pip check`` verifies
that the wheel's declared requirements are met by them; tfctr itself comes only from the wheel."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("setup.py", "pyproject.toml", "README.md", "tfctr", "tfctr_command.py", "export", "serving")


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the README heading ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{heading}\n"):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, environment) of a fresh venv with the wheel of this checkout installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a clean copy: an in-tree build/ could carry stale modules into the wheel
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next((root / "dist").glob("tfctr-*.whl"))
    venv = root / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    return python, env, site


def _run(command, env, cwd, timeout=600):
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_holds_the_package_and_its_requirements_are_met(installed, tmp_path):
    python, env, site = installed
    where = _run([str(python), "-c", "import tfctr; print(tfctr.__file__)"], env, tmp_path)
    assert Path(where.strip()).is_relative_to(site)  # the wheel's copy, not the checkout
    _run([str(python), "-m", "pip", "check"], env, tmp_path)
    assert os.access(python.parent / "tfctr", os.X_OK)  # the console script (run by the CLI block test)


def test_readme_quickstart_runs_and_import_tfctr_loads_saved_models(installed, tmp_path):
    python, env, _ = installed
    quickstart = readme_block("## Quickstart", "python")
    (tmp_path / "quickstart.py").write_text(
        quickstart + "\nmodel.save('model.keras')\n"
        "import numpy as np\nnp.save('expected.npy', model.predict(parquet_dataset(paths['test'], spec, 4096), "
        "verbose=0))\n")
    _run([str(python), "quickstart.py"], env, tmp_path)
    assert (tmp_path / "models" / "ctr" / "1" / "saved_model.pb").exists()
    # a new process with only `import tfctr`: Keras finds every tfctr layer
    _run([str(python), "-c", "import numpy as np, tensorflow as tf, tfctr\n"
          "from tfctr.data import fit_spec, infer_spec, parquet_dataset\n"
          "model = tf.keras.models.load_model('model.keras')\n"
          "spec = fit_spec(infer_spec('data/train.parquet', exclude=['true_ctr']), 'data/train.parquet')\n"
          "got = model.predict(parquet_dataset('data/test.parquet', spec, 4096), verbose=0)\n"
          "np.testing.assert_allclose(got, np.load('expected.npy'), atol=1e-6)\n"], env, tmp_path)


def test_readme_cli_block_runs_as_written(installed, tmp_path):
    _, env, _ = installed
    lines = [line for line in readme_block("## CLI", "bash").splitlines() if line.strip()]
    for line in lines:
        _run(["bash", "-c", line], env, tmp_path)
    metrics = (tmp_path / "runs" / "dcnv2" / "metrics.json").read_text()
    assert '"auc"' in metrics and (tmp_path / "models" / "ctr" / "1" / "saved_model.pb").exists()
