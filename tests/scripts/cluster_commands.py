"""One worker of a multi-worker cluster on 127.0.0.1 (its TF_CONFIG in the environment) running
``search_fusion`` and then ``distill`` as a user would (tests/test_cluster.py).

    python cluster_commands.py SEARCH_KWARGS_JSON DISTILL_KWARGS_JSON
"""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from tfctr.training import distill, search_fusion  # noqa: E402

search_fusion(**json.loads(sys.argv[1]))
distill(**json.loads(sys.argv[2]))
print("finished")
