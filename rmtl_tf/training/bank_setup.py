"""The pretrained weights every new task of a model directory starts from:
the bank (`bank.npz`, loaded, pretrained or imported once) and, for the
rc_ri* variants, the response initialization (`ri.npz`)."""

import os

from rmtl_tf.data import image_folder
from rmtl_tf.models import bank as bank_lib
from rmtl_tf.models import response_init
from rmtl_tf.models.model_dir import BANK_FILE, RI_FILE, read_summary
from rmtl_tf.training import pretrain_lib

RI_EXAMPLES = 64  # Images whose responses response initialization uses.


def check_bank_source(config):
    """A model directory keeps the bank its first task was trained on: a run
    asking for another one is refused instead of silently ignored."""
    summary = read_summary(config.model_dir) or {}
    sources = {t: s.get("config", {}).get("bank")
               for t, s in summary.get("tasks", {}).items()}
    other = {t: b for t, b in sources.items()
             if b is not None and b != config.bank}
    if other:
        task, bank = sorted(other.items())[0]
        raise ValueError(
            f"--bank={config.bank} conflicts with model_dir="
            f"{config.model_dir!r}: its task {task!r} was trained on "
            f"--bank={bank}, and every task of a model directory shares one "
            f"bank. Pass --bank={bank} to add tasks, or use a new "
            "--model_dir.")


def bank_weights(config, log):
    """The bank weights of `config.model_dir` (`bank.npz`), made from
    `config.bank` on first use; None for `--bank=random`."""
    check_bank_source(config)
    path = os.path.join(config.model_dir, BANK_FILE)
    if os.path.isfile(path):
        return bank_lib.load_npz(path)
    if config.bank == "random":
        return None
    if config.bank == "pretrain":
        weights = pretrain_lib.pretrain(config, log=log)
    else:
        weights = bank_lib.load_bank_weights(config.bank, config.backbone,
                                             config.width_multiplier)
    bank_lib.save_bank(path, weights)
    return weights


def response_init_weights(config, data, weights, log, model=None):
    """The PCA of the pretrained convs' responses, once per model directory
    (stored in `ri.npz`): the authors' decompositions with
    `--ri_decompositions`, else computed on the images of `--ri_images` or
    on training images of `data` (the resolved dataset)."""
    path = os.path.join(config.model_dir, RI_FILE)
    if os.path.isfile(path):
        return bank_lib.load_npz(path, what="Response initialization")
    if weights is None:
        raise ValueError("Response initialization (--variant="
                         f"{config.variant}) needs pretrained weights; "
                         "received --bank=random.")
    if config.ri_decompositions:
        ri = response_init.load_decompositions(
            config.ri_decompositions,
            response_init.reparameterized_layers(model), config.backbone)
        log(f"Response initialization: the decompositions of {len(ri) // 2}"
            f" layers from {config.ri_decompositions}.")
        bank_lib.save_bank(path, ri)
        return ri
    if config.ri_images:
        log(f"Response initialization on the images under "
            f"{config.ri_images} (resized to 256, centre 224x224).")
        images = image_folder.batches(config.ri_images, config.batch_size)
    else:
        split = data.split(
            "train", [], config.image_size, config.batch_size,
            min(config.train_examples, RI_EXAMPLES), seed=config.seed)
        images = (image for image, _ in split)
    ri = response_init.compute(weights, images, config.backbone,
                               config.width_multiplier, log=log)
    bank_lib.save_bank(path, ri)
    return ri
