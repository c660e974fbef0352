"""The public API: names do not disappear by accident."""

from __future__ import annotations

import featuremaps

PUBLIC = {
    "CheckpointError",
    "LayerError",
    "LayerInfo",
    "ModelError",
    "ModelInfo",
    "available_models",
    "extract",
    "list_layers",
    "load_model",
    "render_overlay",
    "render_receptive_field",
    "save_checkpoint",
    "ConvGeometry",
    "ConvLayer",
    "ConvStep",
    "FeatureExtractor",
    "ModelInput",
    "model_info",
    "FeatureMapsError",
    "ImageError",
    "Padding",
    "ReceptiveField",
    "SettingsError",
    "conv2d",
    "conv_output_size",
    "load_image",
    "receptive_field",
    "render_grid",
    "samples",
    "save_maps",
    "Lineage",
    "lineage",
    "render_lineage",
}


def test_public_names_are_exported_and_sorted():
    assert PUBLIC <= set(featuremaps.__all__)
    assert list(featuremaps.__all__) == sorted(featuremaps.__all__)
    for name in featuremaps.__all__:
        assert hasattr(featuremaps, name), name


def test_lineage_is_the_function_and_its_package_still_imports():
    from featuremaps.analysis.lineage import lineage

    assert featuremaps.lineage is lineage
    assert callable(featuremaps.lineage)


def test_errors_inherit_from_builtins():
    assert issubclass(featuremaps.ImageError, ValueError)
    assert issubclass(featuremaps.SettingsError, ValueError)
    assert issubclass(featuremaps.ImageError, featuremaps.FeatureMapsError)
