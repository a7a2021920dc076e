"""The built image: its configuration and contents, as SageMaker will find them."""

from __future__ import annotations

import pytest

from smvision.core import contract
from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, image_config, run_in_image

pytestmark = pytest.mark.slow


def test_image_configuration(engine: Engine, image: BuiltImage) -> None:
    config = image_config(engine, image.tag)
    env = {name: value for name, value in (str(item).split("=", 1) for item in config["Env"])}
    assert env[contract.TRAINING_MODULE_ENV] == contract.TRAINING_MODULE
    assert env["PYTHONUNBUFFERED"] == "1"
    assert config.get("Entrypoint") in (None, [])
    assert config["Cmd"] == ["train"]
    labels = config["Labels"]
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"


def test_image_contents(engine: Engine, image: BuiltImage) -> None:
    """Console scripts on PATH, the package installed as a package with the toolkit's
    entry script, nothing under /opt/ml, no compiler, a Python that matches the wheels."""
    script = r"""
set -u
echo "train=$(command -v train) serve=$(command -v serve)"
echo "compilers=$(command -v gcc cc c++ || true)"
ls -A /opt/ml 2>&1 | sed 's/^/opt-ml: /'
python - <<'PY'
import importlib.metadata as m, json, pathlib, sys, smvision
package = pathlib.Path(smvision.__file__).parent
print("python", sys.version.split()[0])
print("package", package)
print("entry_script", (package / "training" / "entry_script" / "train.py").is_file())
direct = m.distribution("smvision").read_text("direct_url.json")
print("editable", bool(direct and json.loads(direct).get("dir_info", {}).get("editable")))
import tensorflow, keras, cv2, sklearn, sagemaker_training
print("imports ok")
PY
"""
    completed = run_in_image(engine, image.tag, script)
    out = completed.stdout
    assert completed.returncode == 0, out + completed.stderr
    assert "train=/opt/smvision/venv/bin/train serve=/opt/smvision/venv/bin/serve" in out
    assert "compilers=\n" in out
    assert "opt-ml: ls: cannot access '/opt/ml': No such file or directory" in out
    assert "python 3.11." in out
    assert "package /opt/smvision/venv/lib/python3.11/site-packages/smvision" in out
    assert "entry_script True" in out
    assert "editable False" in out
    assert "imports ok" in out
