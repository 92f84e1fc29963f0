"""Runs ``tfctr`` with the arguments given, in a process whose CPU is split into 2 logical devices, so that
``--strategy mirrored`` has two replicas (tests/test_cli_options). The devices must exist before TensorFlow
initialises, hence a script."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfctr.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
