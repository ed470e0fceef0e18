"""Metrics: FID for generated images (with its feature extractors) and field errors.

``FEATURE_EXTRACTORS`` maps ``evaluation.fid.extractor`` to a constructor;
``FIELD_METRICS`` maps a field-metric name to a per-sample distance.
"""

from coldflow.metrics.features import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    InceptionFeatures,
    MNISTClassifierFeatures,
    build_feature_extractor,
    classifier_accuracy,
    train_mnist_classifier,
)
from coldflow.metrics.fid import (
    compute_features,
    feature_statistics,
    fid_from_images,
    frechet_distance,
    mnist_real_statistics,
    real_statistics,
    stats_cache_path,
)
from coldflow.metrics.field import (
    EVALUATION_DEFAULTS,
    FIELD_METRICS,
    FieldEvaluator,
    evaluate_pairs,
    psnr,
    relative_l1,
)
from coldflow.metrics.files import evaluate_fields, format_table

__all__ = [
    "EVALUATION_DEFAULTS",
    "FEATURE_EXTRACTORS",
    "FIELD_METRICS",
    "FeatureExtractor",
    "FieldEvaluator",
    "InceptionFeatures",
    "MNISTClassifierFeatures",
    "build_feature_extractor",
    "classifier_accuracy",
    "compute_features",
    "evaluate_fields",
    "evaluate_pairs",
    "feature_statistics",
    "fid_from_images",
    "format_table",
    "frechet_distance",
    "mnist_real_statistics",
    "psnr",
    "real_statistics",
    "relative_l1",
    "stats_cache_path",
    "train_mnist_classifier",
]
