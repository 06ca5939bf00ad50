"""S4L losses, each a pure function of logits (and, for VAT, of a logits function).

Which forward passes may update BatchNorm running statistics:
- the clean supervised forward (labelled and unlabelled examples, train mode): yes;
- the rotation forward (rotated copies, train mode): yes;
- VAT's perturbed forwards (power iteration and final): no — ``vat_loss`` runs them inside
  ``frozen_bn_stats`` (batch statistics, no running-buffer update);
- evaluation and pseudo-labelling: never — they run in eval mode.
"""
from training.losses.class_weights import ImbalanceWeights, imbalance_weights
from training.losses.entropy import entropy_minimisation, softmax_entropy
from training.losses.masked_ce import masked_cross_entropy
from training.losses.rotation import rotate_batch, rotation_loss, select_rotation_frames
from training.losses.vat import VatConfig, frozen_bn_stats, kl_from_logits, vat_loss

__all__ = [
    "ImbalanceWeights", "imbalance_weights", "entropy_minimisation", "softmax_entropy",
    "masked_cross_entropy", "rotate_batch", "rotation_loss", "select_rotation_frames",
    "VatConfig", "frozen_bn_stats", "kl_from_logits", "vat_loss",
]
