"""BPR with hard-negative mixing: a fused numba sampling + SGD kernel, the samplers over it, the estimator;
and the negative-sampling strategies (sources, mixed sampler, curriculum) the torch trainer draws from. The
torch trainer itself (:mod:`core.bpr.torch_trainer`) is imported on its own: ``import core.bpr`` never
imports torch."""

from core.bpr.checkpoint import load_checkpoint
from core.bpr.initial import initial_factors
from core.bpr.kernel import bpr_epoch, bpr_step_reference, sample_triplets
from core.bpr.model import BPR
from core.bpr.sampler import HardNegativeMixer, TripletSampler
from core.bpr.strategy import (
    DynamicSamplingConfig,
    MixedNegativeSampler,
    SamplingStrategy,
    build_sources,
    contextual_negatives,
    merge_sources,
    popular_negatives,
    sentiment_negatives,
)

__all__ = [
    "BPR",
    "DynamicSamplingConfig",
    "HardNegativeMixer",
    "MixedNegativeSampler",
    "SamplingStrategy",
    "TripletSampler",
    "bpr_epoch",
    "bpr_step_reference",
    "build_sources",
    "contextual_negatives",
    "initial_factors",
    "load_checkpoint",
    "merge_sources",
    "popular_negatives",
    "sample_triplets",
    "sentiment_negatives",
]
