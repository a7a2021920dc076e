"""The toolkit hook: the training toolkit's own process never imports TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from smvision.training import toolkit_entry
toolkit_entry.configure_toolkit()
from sagemaker_training import process
classes = process.get_tensorflow_exception_classes()
print(json.dumps({"tensorflow": "tensorflow" in sys.modules,
                  "classes": [c.__name__ for c in classes]}))
"""


def test_the_toolkit_learns_no_tensorflow_exception_names() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"tensorflow": False, "classes": ["ExecuteUserScriptError"]}
