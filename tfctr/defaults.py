"""The names and defaults the command line offers, in a module that imports nothing, so that ``tfctr --help``
(``tfctr_command``) builds the whole parser without loading TensorFlow. The training code takes its defaults
from here too: one value, shown by ``--help`` and used by ``tfctr.training``.
"""

# every model tfctr registers (``tfctr.models.available()``; tests/test_cli_options.py checks the two agree)
MODEL_NAMES = ("adaensemble", "apg_dcnv2", "apg_deepfm", "apg_wdl", "autoint", "dagfm", "dcn", "dcnv2", "deepfm",
               "densemoe", "fibinet", "lr", "optfusion", "optfusion_search", "pnn", "wdl", "xdeepfm", "xdeepint")

# model selection (tfctr.training.selection)
TRAINING_MONITORS = ("auc", "logloss", "auc-logloss")  # what train, tune and --monitor offer
DEFAULT_MONITOR = "auc-logloss"

# train (tfctr.training.train)
DEFAULT_CLIPNORM = 10.0
DEFAULT_EPOCHS = 30
DEFAULT_PATIENCE = 2

# tf.distribute (tfctr.training.distribute)
STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server")

# the distillation schedule (tfctr.training.distill), from measurements: on 60k synthetic rows an xDeepFM
# teacher (validation AUC 0.6180) distilled into DAGFM-inner for 5 epochs at Adam 1e-3 reached 0.6044 test AUC
# (teacher 0.6240); at 1e-2, selected on the validation gap to the teacher and allowed to converge, the student's
# validation AUC came within 0.0005 of the teacher's (README, "KD-DAGFM")
DISTILL_EPOCHS = 30
DISTILL_LEARNING_RATE = 1e-2
FINETUNE_EPOCHS = 10
# fine-tuning makes the embeddings trainable: at 1e-3 the same student lost 0.009 validation AUC in its first
# epoch (0.6180 -> 0.6094); 1e-4 is the rate that improved the former 5-epoch student (0.6044 -> 0.6201 test AUC)
FINETUNE_LEARNING_RATE = 1e-4

# export (tfctr.export.precision): the served graph's compute dtype, and the largest |Δprobability| on the check
# rows at which a bfloat16 export is accepted: below what moves an auction (a CTR of 0.020 served as 0.021 is a
# 5% bid change) except for outliers
SERVING_PRECISIONS = ("float32", "bfloat16")
DEFAULT_PROBABILITY_TOLERANCE = 0.01
