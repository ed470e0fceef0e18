"""Metrics: FID for generated images (with its feature extractors) and field errors.

``FEATURE_EXTRACTORS`` maps ``evaluation.fid.extractor`` to a constructor;
``FIELD_METRIC_SPECS`` maps a field-metric name to its :class:`MetricSpec` (function,
column label, higher-is-better, weights, evaluation options), and the ``DEFAULT_*``
lists name the default field metrics. :func:`metric_functions` builds field metrics and
:func:`score_fields` scores fields with them, per sample: every field evaluation uses it.

Beside them, pure functions: improved precision and recall on FID's features
(:mod:`~coldflow.metrics.precision_recall`), kinetic-energy spectra
(:mod:`~coldflow.metrics.spectrum`), vorticity and divergence
(:mod:`~coldflow.metrics.velocity`) and confidence intervals, paired differences and
verdicts over seeds and samples (:mod:`~coldflow.metrics.intervals`).
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
    fid_from_features,
    fid_from_images,
    frechet_distance,
    mnist_real_features,
    mnist_real_statistics,
    real_features,
    real_statistics,
    stats_cache_path,
)
from coldflow.metrics.field import (
    FieldsInputError,
    evaluate_pairs,
    metric_functions,
    score_fields,
)
from coldflow.metrics.files import evaluate_fields, format_table
from coldflow.metrics.intervals import (
    Interval,
    bootstrap_interval,
    format_interval,
    mean_interval,
    paired_difference,
    verdict,
)
from coldflow.metrics.precision_recall import precision_recall
from coldflow.metrics.spec import (
    DEFAULT_FIELD_METRICS,
    DEFAULT_FILE_METRICS,
    DEFAULT_FRAME_METRICS,
    EVALUATION_DEFAULTS,
    FIELD_METRIC_SPECS,
    FIELD_METRICS,
    METRIC_COLUMNS,
    PERCEPTUAL_IF_AVAILABLE,
    MetricSpec,
    UnknownMetricError,
    metric_spec,
    metric_specs,
    psnr,
    relative_l1,
)
from coldflow.metrics.spectrum import energy_spectrum, log_spectral_error, top_octave_error

__all__ = [
    "DEFAULT_FIELD_METRICS",
    "DEFAULT_FILE_METRICS",
    "DEFAULT_FRAME_METRICS",
    "EVALUATION_DEFAULTS",
    "FEATURE_EXTRACTORS",
    "FIELD_METRICS",
    "FIELD_METRIC_SPECS",
    "FeatureExtractor",
    "FieldsInputError",
    "InceptionFeatures",
    "Interval",
    "METRIC_COLUMNS",
    "MNISTClassifierFeatures",
    "MetricSpec",
    "PERCEPTUAL_IF_AVAILABLE",
    "UnknownMetricError",
    "bootstrap_interval",
    "build_feature_extractor",
    "classifier_accuracy",
    "compute_features",
    "energy_spectrum",
    "evaluate_fields",
    "evaluate_pairs",
    "feature_statistics",
    "fid_from_features",
    "fid_from_images",
    "format_interval",
    "format_table",
    "frechet_distance",
    "log_spectral_error",
    "mean_interval",
    "metric_functions",
    "metric_spec",
    "metric_specs",
    "mnist_real_features",
    "mnist_real_statistics",
    "paired_difference",
    "precision_recall",
    "psnr",
    "real_features",
    "real_statistics",
    "relative_l1",
    "score_fields",
    "stats_cache_path",
    "top_octave_error",
    "train_mnist_classifier",
    "verdict",
]
