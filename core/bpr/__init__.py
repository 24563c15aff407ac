"""BPR with hard-negative mixing: a fused numba sampling + SGD kernel, the samplers over it, the estimator."""

from core.bpr.kernel import bpr_epoch, bpr_step_reference, sample_triplets
from core.bpr.model import BPR, initial_factors, load_checkpoint
from core.bpr.sampler import HardNegativeMixer, TripletSampler

__all__ = [
    "BPR",
    "HardNegativeMixer",
    "TripletSampler",
    "bpr_epoch",
    "bpr_step_reference",
    "initial_factors",
    "load_checkpoint",
    "sample_triplets",
]
